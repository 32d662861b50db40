// JS side of tests/relay_client_interop.rs: a JS relayed client (npm @hyperswarm/dht-relay
// 0.4.3, custodial by default, over WebSocket) connects through the relay to a `dat-social host`
// listening there on its identity key, and replicates the host's archive with JS hypercore
// 11 straight on the relayed stream (`core.replicate(stream)`: protomux on the stream, no
// second secret-stream). Prints one JSON line: the stream's keys and hash, and the archive's
// profile.json and session.json (read as docs/ARCHIVE.md says).
//
//   node relay-read-archive.js ws://127.0.0.1:PORT <archive key hex>
'use strict'
const os = require('os')
const fs = require('fs')
const path = require('path')
const WebSocket = require('ws')
const DHT = require('@hyperswarm/dht-relay')
const Stream = require('@hyperswarm/dht-relay/ws')
const Hypercore = require('hypercore')

const [url, keyHex] = process.argv.slice(2)
// CUSTODIAL=0: non-custodial (`custodial: false`: the node keeps its secret key, runs Noise IK
// through the relay and encrypts the stream end to end).
const CUSTODIAL = process.env.CUSTODIAL !== '0'

async function files (core, length) {
  const found = {}
  for (let i = length - 1; i >= 0 && (!found.profile || !found.session); i--) {
    const entry = JSON.parse(await core.get(i))
    if (i === 0) break
    const name = entry.path === 'profile.json' ? 'profile' : entry.path === 'session.json' ? 'session' : null
    if (!name || name in found) continue
    found[name] = entry.type === 'put' ? JSON.parse(entry.value) : null
  }
  return found
}

async function main () {
  const key = Buffer.from(keyHex, 'hex')
  const node = new DHT(new Stream(true, new WebSocket(url)), { custodial: CUSTODIAL })
  const stream = node.connect(key)
  await new Promise((resolve, reject) => {
    stream.once('open', resolve)
    stream.once('error', reject)
  })
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-relay-'))
  const core = new Hypercore(dir, key, { compat: true })
  await core.ready()
  const replication = core.replicate(stream)
  replication.on('error', () => {})
  core.download({ start: 0, end: -1 })
  await core.update({ wait: true })
  const f = await files(core, core.length)
  console.log(JSON.stringify({
    remote_public_key: stream.remotePublicKey.toString('hex'),
    handshake_hash: stream.handshakeHash.toString('hex'),
    length: core.length,
    profile: f.profile,
    session: f.session
  }))
  stream.destroy()
  await core.close()
  fs.rmSync(dir, { recursive: true, force: true })
  await node.destroy({ force: true })
  process.exit(0)
}

setTimeout(() => { console.error('relay-read-archive: timed out'); process.exit(2) }, 30000).unref()
main().catch((err) => { console.error('relay-read-archive:', err); process.exit(1) })
