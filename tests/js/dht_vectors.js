// Wire vectors of the Hyperswarm DHT, produced by the JS packages themselves, for the Rust codecs
// in src/dht/ (tests/dht_codec_js.rs runs this and compares byte for byte). Prints one JSON
// object: { rpc: [...], messages: [...] }.
//
// rpc: real dht-rpc 6.27.0 datagrams. A JS node sends requests (every flag combination) to a tap
// socket, which records them and forwards each to a second JS node whose handler answers in
// every way a response can look (value, token, closer nodes, error); the tap records those too.
// Each entry: { kind: 'request'|'response', hex, fields } where fields is what dht-rpc itself
// decodes from the bytes (io.js Request.decode / decodeReply), buffers as hex.
//
// messages: c.encode of hyperdht 6.34.0 lib/messages.js codecs (handshake, holepunch,
// holepunchPayload, peer, lookupRawReply, announce, mutableSignable, mutablePutRequest,
// mutableGetResponse), with the decoded value JS reads back.
'use strict'
const dgram = require('dgram')
const c = require('compact-encoding')
const DHT = require('dht-rpc')
const m = require('hyperdht/lib/messages.js')

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const fill = (n, v) => Buffer.alloc(n, v)
const addr = (host, port) => ({ host, port })

// JSON-friendly copy: buffers as hex, everything else as is.
function plain(v) {
  if (v === null || v === undefined) return null
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return hex(v)
  if (Array.isArray(v)) return v.map(plain)
  if (typeof v === 'object') {
    const o = {}
    for (const [k, x] of Object.entries(v)) if (k !== 'id' || x !== null) o[k] = plain(x)
    return o
  }
  return v
}

function messageVectors() {
  const out = []
  const add = (codec, name, value) => {
    const bytes = c.encode(m[codec], value)
    out.push({ codec, name, hex: hex(bytes), decoded: plain(c.decode(m[codec], bytes)) })
  }
  add('handshake', 'from-client', { mode: 0, noise: fill(80, 1), peerAddress: null, relayAddress: null })
  add('handshake', 'from-relay', { mode: 2, noise: fill(3, 2), peerAddress: addr('10.0.0.1', 49737), relayAddress: null })
  add('handshake', 'from-second-relay', { mode: 3, noise: fill(200, 3), peerAddress: addr('192.168.1.20', 1), relayAddress: addr('1.2.3.4', 65535) })
  add('handshake', 'reply-empty-noise', { mode: 4, noise: Buffer.alloc(0), peerAddress: null, relayAddress: addr('127.0.0.1', 80) })
  add('holepunch', 'plain', { mode: 0, id: 0, payload: fill(64, 4), peerAddress: null })
  add('holepunch', 'with-peer', { mode: 1, id: 300, payload: fill(300, 5), peerAddress: addr('203.0.113.9', 4000) })
  add('holepunchPayload', 'minimal', { error: 0, firewall: 0, round: 0, connected: false, punching: false, addresses: null, remoteAddress: null, token: null, remoteToken: null })
  add('holepunchPayload', 'full', { error: 3, firewall: 2, round: 7, connected: true, punching: true, addresses: [addr('1.1.1.1', 1), addr('2.2.2.2', 2)], remoteAddress: addr('3.3.3.3', 3), token: fill(32, 6), remoteToken: fill(32, 7) })
  add('holepunchPayload', 'punching', { error: 0, firewall: 3, round: 1, connected: false, punching: true, addresses: [], remoteAddress: null, token: fill(32, 8), remoteToken: null })
  add('peer', 'no-relays', { publicKey: fill(32, 9), relayAddresses: [] })
  add('peer', 'relays', { publicKey: fill(32, 10), relayAddresses: [addr('10.1.1.1', 49737), addr('10.1.1.2', 49738), addr('10.1.1.3', 49739)] })
  const peerBytes = (k) => c.encode(m.peer, { publicKey: fill(32, k), relayAddresses: [addr('9.9.9.' + k, k)] })
  add('lookupRawReply', 'two-peers', { peers: [peerBytes(11), peerBytes(12)], bump: 0 })
  add('lookupRawReply', 'bumped', { peers: [], bump: 1700000000000 })
  add('announce', 'signed', { peer: { publicKey: fill(32, 13), relayAddresses: [addr('4.4.4.4', 44)] }, refresh: null, signature: fill(64, 14), bump: 0 })
  add('announce', 'refresh-only', { peer: null, refresh: fill(32, 15), signature: null, bump: 0 })
  add('announce', 'everything', { peer: { publicKey: fill(32, 16), relayAddresses: [] }, refresh: fill(32, 17), signature: fill(64, 18), bump: 70000 })
  add('mutableSignable', 'small', { seq: 0, value: Buffer.from('hello') })
  add('mutableSignable', 'large-seq', { seq: 4294967296, value: fill(1000, 19) })
  add('mutablePutRequest', 'put', { publicKey: fill(32, 20), seq: 5, value: Buffer.from('value'), signature: fill(64, 21) })
  add('mutableGetResponse', 'get', { seq: 65536, value: fill(2, 22), signature: fill(64, 23) })
  return out
}

async function rpcVectors() {
  const bootstrap = new DHT({ ephemeral: false, firewalled: false, bootstrap: [], host: '127.0.0.1' })
  await bootstrap.ready()
  const bootAddr = `127.0.0.1:${bootstrap.address().port}`
  // The answering node: persistent, so that its replies carry its id.
  const answerer = new DHT({ ephemeral: false, firewalled: false, bootstrap: [bootAddr], host: '127.0.0.1' })
  // Persistent neighbours, so that the answerer's replies carry closer nodes.
  const others = [1, 2].map(() => new DHT({ ephemeral: false, firewalled: false, bootstrap: [bootAddr], host: '127.0.0.1' }))
  const asker = new DHT({ ephemeral: true, bootstrap: [bootAddr], host: '127.0.0.1' })
  await answerer.fullyBootstrapped()
  for (const o of others) await o.fullyBootstrapped()
  await asker.fullyBootstrapped()
  await answerer.findNode(fill(32, 0)).finished()

  answerer.on('request', (req) => {
    // The command number says how to answer (the ones dht-rpc does not handle itself).
    switch (req.command) {
      case 10: return req.reply(null)
      case 11: return req.reply(Buffer.from('answer value'))
      case 12: return req.reply(null, { token: false })
      case 13: return req.reply(fill(600, 0x5a), { closerNodes: false, token: false })
      case 14: return req.error(7)
      case 15: return req.error(2, { token: true })
      default: return req.reply(null)
    }
  })

  const tap = dgram.createSocket('udp4')
  await new Promise((resolve) => tap.bind(0, '127.0.0.1', resolve))
  const tapPort = tap.address().port
  const answererPort = answerer.address().port
  const records = []
  const waiting = new Map() // tid -> resolve
  tap.on('message', (msg, rinfo) => {
    if (rinfo.port === answererPort) {
      records.push({ kind: 'response', bytes: msg })
      const tid = msg.readUInt16LE(2)
      const done = waiting.get(tid)
      if (done) {
        waiting.delete(tid)
        done()
      }
      return
    }
    if (msg[0] === 0x03 && !records.some((r) => r.kind === 'request' && r.bytes.equals(msg))) {
      records.push({ kind: 'request', bytes: msg })
      const tid = msg.readUInt16LE(2)
      new Promise((resolve) => {
        waiting.set(tid, resolve)
        tap.send(msg, answererPort, '127.0.0.1')
      })
    }
  })

  const target = fill(32, 0xab)
  const token = fill(32, 0xcd)
  const tapAddr = { host: '127.0.0.1', port: tapPort }
  const once = { retry: false }
  const internal = (command, target, value) =>
    asker._requestToPromise(asker.io.createRequest({ id: null, ...tapAddr }, null, true, command, target, value, null), once)
  for (const send of [
    () => asker.ping(tapAddr, once), // PING
    () => others[0].ping(tapAddr, once), // PING from a persistent node: carries its id
    () => internal(2, target, null), // FIND_NODE
    () => asker.delayedPing(tapAddr, 10, once) // DELAYED_PING 10 ms
  ]) {
    try {
      await send()
    } catch {}
  }
  const requests = [
    { command: 10, target },
    { command: 11, target, value: Buffer.from('request value') },
    { command: 12, target, token },
    { command: 13, target, value: Buffer.alloc(0) },
    { command: 14 },
    { command: 15, token, value: fill(300, 1) },
    { command: 200, target, token, value: fill(2, 2) }
  ]
  for (const r of requests) {
    try {
      await asker.request(r, tapAddr, once)
    } catch {}
  }
  // Let the last answers arrive.
  const until = Date.now() + 3000
  while (waiting.size > 0 && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 20))

  const out = []
  for (const r of records) {
    out.push({ kind: r.kind, hex: hex(r.bytes), fields: decodeRpc(r.bytes) })
  }
  tap.close()
  await asker.destroy()
  await answerer.destroy()
  for (const o of others) await o.destroy()
  await bootstrap.destroy()
  return out
}

// What dht-rpc 6.27.0 reads from a datagram (lib/io.js Request.decode and decodeReply), using its
// own codecs for each field.
function decodeRpc(bytes) {
  const state = { start: 1, end: bytes.length, buffer: bytes }
  const flags = c.uint.decode(state)
  const tid = c.uint16.decode(state)
  const to = c.ipv4Address.decode(state)
  const o = { flags, tid, to: `${to.host}:${to.port}` }
  o.id = flags & 1 ? hex(c.fixed32.decode(state)) : null
  o.token = flags & 2 ? hex(c.fixed32.decode(state)) : null
  if (bytes[0] === 0x03) {
    o.internal = (flags & 4) !== 0
    o.command = c.uint.decode(state)
    o.target = flags & 8 ? hex(c.fixed32.decode(state)) : null
    o.value = flags & 16 ? hex(c.buffer.decode(state)) : null
  } else {
    o.closerNodes = flags & 4 ? c.array(c.ipv4Address).decode(state).map((a) => `${a.host}:${a.port}`) : null
    o.error = flags & 8 ? c.uint.decode(state) : 0
    o.value = flags & 16 ? hex(c.buffer.decode(state)) : null
  }
  return o
}

;(async () => {
  const rpc = await rpcVectors()
  console.log(JSON.stringify({ rpc, messages: messageVectors() }))
})().catch((e) => {
  console.error(e)
  process.exit(1)
})
