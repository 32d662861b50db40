// Prints the hex encodings (JS hypercore 11.37.1 lib/messages.js, lib/caps.js) that the Rust unit
// tests in src/hypercore/messages.rs and crypto.rs compare against. Run: node tests/js/messages.js [outdir]
// With an outdir, writes one <name>.hex file per vector there.
'use strict'
const path = require('path')
const fs = require('fs')
const c = require('compact-encoding')
const m = require('hypercore/lib/messages.js')

const node = (index, size, fill) => ({ index, size, hash: Buffer.alloc(32, fill) })
const signer = { signature: 'ed25519', namespace: Buffer.alloc(32, 0x11), publicKey: Buffer.alloc(32, 0x22) }

const vectors = {
  request1: c.encode(m.wire.request, {
    id: 7, fork: 0, block: { index: 300, nodes: 2 }, hash: null, seek: null,
    upgrade: { start: 5, length: 70000 }, manifest: true, priority: 0
  }),
  request2: c.encode(m.wire.request, {
    id: 1, fork: 3, block: null, hash: { index: 9, nodes: 0 }, seek: { bytes: 1000, padding: 0 },
    upgrade: null, manifest: false, priority: 2
  }),
  data1: c.encode(m.wire.data, {
    request: 7,
    fork: 0,
    block: { index: 2, value: Buffer.from('hello'), nodes: [node(6, 10, 1), node(1, 9, 2)] },
    hash: null,
    seek: { bytes: 12, nodes: [node(3, 40, 3)] },
    upgrade: { start: 0, length: 4, nodes: [node(3, 40, 4)], additionalNodes: [node(9, 5, 5)], signature: Buffer.alloc(64, 0xaa) },
    manifest: null
  }),
  data_manifest_v1: c.encode(m.wire.data, {
    request: 1, fork: 0, block: null, hash: null, seek: null, upgrade: null,
    manifest: { version: 1, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signer], prologue: null, linked: null, userData: null }
  }),
  manifest_v0: c.encode(m.manifest, {
    version: 0, hash: 'blake2b', allowPatch: false, quorum: 1, signers: [signer], prologue: null, linked: null, userData: null
  })
}

const caps = require('hypercore/lib/caps.js')
vectors.replicate_initiator = caps.replicate(true, Buffer.alloc(32, 0x22), Buffer.alloc(64, 0x33))
vectors.replicate_responder = caps.replicate(false, Buffer.alloc(32, 0x22), Buffer.alloc(64, 0x33))

const out = process.argv[2]
for (const [name, buf] of Object.entries(vectors)) {
  if (out) fs.writeFileSync(path.join(out, name + '.hex'), buf.toString('hex') + '\n')
  else console.log(name, buf.toString('hex'))
}
