// JS side of tests/relay_client_interop.rs: a JS relayed server (npm @hyperswarm/dht-relay
// 0.4.3, custodial by default, over WebSocket) listens through the relay with the key pair of
// seed 0x66 and serves a JS hypercore 11 (compat) whose block i is `block-<i>` on every
// relayed connection (`core.replicate(stream)`). Prints one JSON line {public_key, core_key,
// length} once listening, then one {remote_public_key, handshake_hash} per connection; exits
// on stdin EOF.
//
//   node relay-serve-core.js ws://127.0.0.1:PORT <blocks>
'use strict'
const os = require('os')
const fs = require('fs')
const path = require('path')
const WebSocket = require('ws')
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')
const Hypercore = require('hypercore')

const [url, blocks] = process.argv.slice(2)
// CUSTODIAL=0: non-custodial (`custodial: false`: the node keeps its secret key, runs Noise IK
// through the relay and encrypts the stream end to end).
const CUSTODIAL = process.env.CUSTODIAL !== '0'

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-relay-core-'))
  const core = new Hypercore(dir, { compat: true })
  await core.ready()
  for (let i = 0; i < Number(blocks); i++) await core.append(Buffer.from(`block-${i}`))
  const keyPair = DHT.keyPair(Buffer.alloc(32, 0x66))
  const node = new DHT(new Stream(true, new WebSocket(url)), { keyPair, custodial: CUSTODIAL })
  node.on('error', () => {})
  const server = node.createServer((stream) => {
    console.log(JSON.stringify({
      remote_public_key: stream.remotePublicKey.toString('hex'),
      handshake_hash: stream.handshakeHash.toString('hex')
    }))
    core.replicate(stream).on('error', () => {})
  })
  await server.listen(keyPair)
  console.log(JSON.stringify({
    public_key: keyPair.publicKey.toString('hex'),
    core_key: core.key.toString('hex'),
    length: core.length
  }))
  process.stdin.on('data', () => {})
  process.stdin.on('end', async () => {
    await node.destroy({ force: true })
    await core.close()
    fs.rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  })
}

setTimeout(() => { console.error('relay-serve-core: timed out'); process.exit(2) }, 60000).unref()
main().catch((err) => { console.error('relay-serve-core:', err); process.exit(1) })
