// dht-rpc 6.27.0 nodes on 127.0.0.1, for tests/dht_rpc_js.rs. By MODE:
//   join      BOOTSTRAP=host:port (our node): starts 2 persistent and 2 ephemeral JS nodes that
//             bootstrap from it only, waits until they are fully bootstrapped, pings our node,
//             runs a findNode walk from an ephemeral one, and prints {"persistent": [addr...],
//             "ourId": hex, "found": [addr...], "tables": [n...]}; then exits.
//   hyperdht  BOOTSTRAP=host:port (our node, the only persistent one): two hyperdht 6.34.0
//             nodes join through it; one announces a topic and its own key (as a server
//             does), the other looks both up; then the first unannounces the topic and the
//             second looks again; the first puts an immutable value and a mutable one (seq 2),
//             the second gets both. Prints {"announced": hex key, "lookup": [hex keys],
//             "findPeer": hex key|null, "afterUnannounce": [hex keys], "immutable": text|null,
//             "mutable": {"seq", "value"}|null}.
//   testnet   starts a bootstrap node and 4 persistent nodes, prints {"nodes": [addr...]}
//             (the bootstrap first), and runs until stdin closes.
'use strict'
const DHT = require('dht-rpc')

const addr = (n) => `127.0.0.1:${n.address().port}`

async function join() {
  const bootstrap = [process.env.BOOTSTRAP]
  const persistent = [0, 1].map(() => new DHT({ bootstrap, ephemeral: false, firewalled: false, host: '127.0.0.1' }))
  const ephemeral = [0, 1].map(() => new DHT({ bootstrap, ephemeral: true, host: '127.0.0.1' }))
  const all = [...persistent, ...ephemeral]
  for (const n of all) await n.fullyBootstrapped()
  const [host, port] = process.env.BOOTSTRAP.split(':')
  const pong = await ephemeral[0].ping({ host, port: Number(port) })
  const found = []
  for await (const reply of ephemeral[1].findNode(Buffer.alloc(32, 0x42))) {
    if (reply.from.id) found.push(`${reply.from.host}:${reply.from.port}`)
  }
  console.log(JSON.stringify({
    persistent: persistent.map(addr),
    ourId: pong.from.id ? pong.from.id.toString('hex') : null,
    found,
    tables: all.map((n) => n.toArray().length)
  }))
  for (const n of all) await n.destroy()
}

async function testnet() {
  const boot = new DHT({ ephemeral: false, firewalled: false, bootstrap: [], host: '127.0.0.1' })
  await boot.ready()
  const bootstrap = [addr(boot)]
  const nodes = [0, 1, 2, 3].map(() => new DHT({ bootstrap, ephemeral: false, firewalled: false, host: '127.0.0.1' }))
  for (const n of nodes) await n.fullyBootstrapped()
  console.log(JSON.stringify({ nodes: [boot, ...nodes].map(addr) }))
  process.stdin.resume()
  process.stdin.on('end', async () => {
    for (const n of [boot, ...nodes]) await n.destroy()
    process.exit(0)
  })
}

async function hyperdht() {
  const HyperDHT = require('hyperdht')
  const bootstrap = [process.env.BOOTSTRAP]
  const a = new HyperDHT({ bootstrap, host: '127.0.0.1' })
  const b = new HyperDHT({ bootstrap, host: '127.0.0.1' })
  await a.ready()
  await b.ready()
  const keyPair = HyperDHT.keyPair(Buffer.alloc(32, 3))
  const topic = Buffer.alloc(32, 0x77)
  const keys = async (q) => {
    const out = []
    for await (const r of q) for (const p of r.peers) out.push(p.publicKey.toString('hex'))
    return [...new Set(out)]
  }
  await a.announce(topic, keyPair, []).finished()
  const self = require('hypercore-crypto').hash(keyPair.publicKey)
  await a.announce(self, keyPair, []).finished()
  const lookup = await keys(b.lookup(topic))
  let peer = null
  for await (const r of b.findPeer(keyPair.publicKey)) if (r.peer) peer = r
  await a.unannounce(topic, keyPair)
  const afterUnannounce = await keys(b.lookup(topic))
  const { hash } = await a.immutablePut(Buffer.from('an immutable value'))
  const immutable = await b.immutableGet(hash)
  await a.mutablePut(keyPair, Buffer.from('mutable, seq 2'), { seq: 2 })
  const mutable = await b.mutableGet(keyPair.publicKey)
  console.log(JSON.stringify({
    announced: keyPair.publicKey.toString('hex'),
    lookup,
    findPeer: peer ? peer.peer.publicKey.toString('hex') : null,
    afterUnannounce,
    immutable: immutable ? immutable.value.toString() : null,
    mutable: mutable ? { seq: mutable.seq, value: mutable.value.toString() } : null
  }))
  await a.destroy()
  await b.destroy()
}

const MODES = { join, testnet, hyperdht }
;(MODES[process.env.MODE] || join)().catch((e) => {
  console.error(e)
  process.exit(1)
})
