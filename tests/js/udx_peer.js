// One udx-native 1.21.3 stream on 127.0.0.1, for tests/udx_js.rs. Prints
// {"port": <udp port>, "id": <stream id>} and reads one JSON line {"id": <remote stream id>,
// "port": <remote udp port>} from stdin, then connects, prints {"connected": true} and, by MODE:
//   echo      writes back every byte it reads; ends when the remote ends.
//   transfer  writes BYTES bytes of a pattern (xorshift from SEED) in WRITE-byte writes, then
//             ends; reads everything the remote sends.
//   message   sends COUNT datagrams (stream.send) "m<i>" and echoes each one it receives as
//             "echo:<payload>"; ends after COUNT received.
//   destroy   writes BYTES bytes, then destroys the stream.
//   secret    runs @hyperswarm/secret-stream 6.9.2 on the stream (initiator when INITIATOR=1)
//             with protomux 3.12.1 on top: prints {"remote": <hex key>} once open; on channel
//             dat-social/lobby (id "room-1") echoes every message as "echo:<message>"; ends when
//             the remote does.
// On close prints {"received": n, "sha256": hex, "messages": [...], "error": code|null}.
'use strict'
const crypto = require('crypto')
const readline = require('readline')
const UDX = require('udx-native')

const MODE = process.env.MODE || 'echo'
const BYTES = Number(process.env.BYTES || 0)
const WRITE = Number(process.env.WRITE || 65536)
const SEED = Number(process.env.SEED || 1)
const COUNT = Number(process.env.COUNT || 0)
const ID = Number(process.env.ID || 7)

function pattern(n, seed) {
  const out = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

const udx = new UDX()
const socket = udx.createSocket()
socket.bind(0, '127.0.0.1')
const stream = udx.createStream(ID)
const hash = crypto.createHash('sha256')
let received = 0
const messages = []
let error = null

// After connect: an initiator writes its first handshake message at once.
function startSecret() {
  const SecretStream = require('@hyperswarm/secret-stream')
  const Protomux = require('protomux')
  const secret = new SecretStream(process.env.INITIATOR === '1', stream)
  const mux = Protomux.from(secret)
  const channel = mux.createChannel({ protocol: 'dat-social/lobby', id: Buffer.from('room-1') })
  const text = channel.addMessage({
    encoding: require('compact-encoding').raw,
    onmessage: (m) => {
      received += m.length
      hash.update(m)
      text.send(Buffer.concat([Buffer.from('echo:'), m]))
    }
  })
  channel.open()
  secret.opened.then((ok) => {
    if (ok) console.log(JSON.stringify({ remote: secret.remotePublicKey.toString('hex') }))
  })
  secret.on('error', (e) => {
    error = e.code || String(e)
  })
  secret.on('end', () => secret.end())
}

stream.on('data', (d) => {
  if (MODE === 'secret') return
  received += d.length
  hash.update(d)
  if (MODE === 'echo') stream.write(d)
})
stream.on('end', () => {
  // transfer ends by itself once its writes are done.
  if (MODE === 'echo') stream.end()
})
stream.on('message', (m) => {
  messages.push(m.toString())
  if (MODE === 'message') {
    stream.send(Buffer.from('echo:' + m.toString()))
    if (messages.length === COUNT) stream.end()
  }
})
stream.on('error', (e) => {
  error = e.code || String(e)
})
stream.on('close', () => {
  console.log(JSON.stringify({ received, sha256: hash.digest('hex'), messages, error }))
  socket.close()
})

console.log(JSON.stringify({ port: socket.address().port, id: ID }))

const rl = readline.createInterface({ input: process.stdin })
rl.once('line', async (line) => {
  const remote = JSON.parse(line)
  stream.connect(socket, remote.id, remote.port, '127.0.0.1')
  console.log(JSON.stringify({ connected: true }))
  if (MODE === 'secret') startSecret()
  if (MODE === 'transfer' || MODE === 'destroy') {
    const data = pattern(BYTES, SEED)
    for (let i = 0; i < data.length; i += WRITE) {
      if (!stream.write(data.subarray(i, i + WRITE))) await new Promise((resolve) => stream.once('drain', resolve))
    }
    if (MODE === 'transfer') stream.end()
    else setTimeout(() => stream.destroy(), 200)
  }
  if (MODE === 'message') {
    for (let i = 0; i < COUNT; i++) stream.send(Buffer.from('m' + i))
  }
})
