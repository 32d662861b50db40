// Interop check for `dat-social relay` (tests/relay_interop.rs): two JS relayed nodes
// (npm @hyperswarm/dht-relay 0.4.3) on separate connections to the relay, custodial (the
// client's default) or, with CUSTODIAL=0, non-custodial (`custodial: false`: the clients keep
// their secret keys, run Noise through the relay and encrypt the stream end to end).
// The "server" node listens with a fixed key pair and announces it on a topic; the "client"
// node looks the topic up, connects to the key, and both exchange a short message and BULK
// bytes each way. Prints one JSON summary line on stdout.
// Usage: node relay-pair.js ws ws://127.0.0.1:PORT | node relay-pair.js tcp 127.0.0.1:PORT
const DHT = require('@hyperswarm/dht-relay')
const crypto = require('crypto')

const [transport, address] = process.argv.slice(2)
const BULK = Number(process.env.BULK || 2 * 1024 * 1024)
const CUSTODIAL = process.env.CUSTODIAL !== '0'
// Further connects after the first (short echo exchanges), each a new relayed handshake.
const REPEAT = Number(process.env.REPEAT || 0)
const TIMEOUT = 30000

function open () {
  if (transport === 'ws') {
    const WebSocket = require('ws')
    const Stream = require('@hyperswarm/dht-relay/ws')
    return new Stream(true, new WebSocket(address))
  }
  const net = require('net')
  const Stream = require('@hyperswarm/dht-relay/tcp')
  const [host, port] = address.split(':')
  return new Stream(true, net.connect(Number(port), host))
}

function pattern (seed, n) {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff
  return out
}

const sha = (b) => crypto.createHash('sha256').update(b).digest('hex')

// Reads `n` bytes after the first line ("hello\n" style header) from `stream`.
function collect (stream, n) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let got = 0
    stream.on('data', (c) => {
      chunks.push(c)
      got += c.length
      if (got >= n) resolve(Buffer.concat(chunks))
    })
    stream.on('error', reject)
    stream.on('close', () => { if (got < n) reject(new Error(`closed after ${got} of ${n} bytes`)) })
  })
}

async function writeAll (stream, buf) {
  for (let i = 0; i < buf.length; i += 65536) {
    if (!stream.write(buf.subarray(i, i + 65536))) {
      await new Promise((resolve) => stream.once('drain', resolve))
    }
  }
}

async function main () {
  const topic = Buffer.alloc(32, 0xaa)
  const serverKeys = DHT.keyPair(Buffer.alloc(32, 0x44))
  const clientKeys = DHT.keyPair(Buffer.alloc(32, 0x55))
  const serverNode = new DHT(open(), { keyPair: serverKeys, custodial: CUSTODIAL })
  const clientNode = new DHT(open(), { keyPair: clientKeys, custodial: CUSTODIAL })
  const result = { custodial: CUSTODIAL }

  let connections = 0
  const serverSide = new Promise((resolve, reject) => {
    const server = serverNode.createServer((stream) => {
      if (connections++ > 0) {
        // A repeat connect: echo one 6-byte line and end.
        collect(stream, 6).then((buf) => {
          stream.end(Buffer.from('echo:' + buf.subarray(0, 5).toString() + '\n'))
        }, () => {})
        return
      }
      result.server_remote_public_key = stream.remotePublicKey.toString('hex')
      result.server_handshake_hash = stream.handshakeHash.toString('hex')
      collect(stream, 6 + BULK).then(async (buf) => {
        result.server_got = buf.subarray(0, 6).toString()
        result.server_got_bulk_sha256 = sha(buf.subarray(6))
        stream.write(Buffer.from('echo:' + buf.subarray(0, 5).toString() + '\n'))
        await writeAll(stream, pattern(2, BULK))
        stream.end()
        resolve(server)
      }, reject)
    })
    server.listen(serverKeys).then(() => {
      result.listening = server.address()
    }, reject)
  })
  serverNode.on('error', () => {})
  await new Promise((resolve) => setTimeout(resolve, 0))

  // Announce the server's key on the topic, then look it up from the other node.
  while (!result.listening) await new Promise((resolve) => setTimeout(resolve, 10))
  await serverNode.announce(topic, serverKeys).resume().finished()
  const found = []
  for await (const reply of clientNode.lookup(topic)) {
    for (const peer of reply.peers) found.push(peer.publicKey.toString('hex'))
  }
  result.lookup_found = found

  const stream = clientNode.connect(serverKeys.publicKey)
  await new Promise((resolve, reject) => {
    stream.once('open', resolve)
    stream.once('error', reject)
  })
  result.client_remote_public_key = stream.remotePublicKey.toString('hex')
  result.client_handshake_hash = stream.handshakeHash.toString('hex')
  const reply = collect(stream, 11 + BULK)
  stream.write(Buffer.from('hello\n'))
  await writeAll(stream, pattern(1, BULK))
  const buf = await reply
  result.client_got = buf.subarray(0, 11).toString()
  result.client_got_bulk_sha256 = sha(buf.subarray(11))
  result.expected_sha256 = { to_server: sha(pattern(1, BULK)), to_client: sha(pattern(2, BULK)) }
  await serverSide
  stream.end()
  result.repeat_ok = 0
  for (let i = 0; i < REPEAT; i++) {
    const again = clientNode.connect(serverKeys.publicKey)
    await new Promise((resolve, reject) => {
      again.once('open', resolve)
      again.once('error', reject)
    })
    const got = collect(again, 11)
    again.write(Buffer.from(`agn${i % 10}${i % 10}\n`))
    if ((await got).toString() === `echo:agn${i % 10}${i % 10}\n`) result.repeat_ok++
    again.end()
  }
  result.server_public_key = serverKeys.publicKey.toString('hex')
  result.client_public_key = clientKeys.publicKey.toString('hex')
  result.bulk = BULK
  console.log(JSON.stringify(result))
  await clientNode.destroy({ force: true })
  await serverNode.destroy({ force: true })
  process.exit(0)
}

setTimeout(() => { console.error('relay-pair: timed out'); process.exit(2) }, TIMEOUT).unref()
main().catch((err) => { console.error('relay-pair:', err); process.exit(1) })
