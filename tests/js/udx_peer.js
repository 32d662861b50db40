// One udx-native 1.21.3 stream on 127.0.0.1, for tests/udx_js.rs. Prints
// {"port": <udp port>, "id": <stream id>} and reads one JSON line {"id": <remote stream id>,
// "port": <remote udp port>} from stdin, then connects, prints {"connected": true} and, by MODE:
//   echo      writes back every byte it reads; ends when the remote ends.
//   transfer  writes BYTES bytes of a pattern (xorshift from SEED) in WRITE-byte writes, then
//             ends; reads everything the remote sends.
//   message   sends COUNT datagrams (stream.send) "m<i>" and echoes each one it receives as
//             "echo:<payload>"; ends after COUNT received.
//   destroy   writes BYTES bytes, then destroys the stream.
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

stream.on('data', (d) => {
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
