// Prints a deterministic Noise XX handshake as @hyperswarm/secret-stream 6.9.2 runs it
// (noise-handshake + noise-curve-ed, empty prologue and payloads), for src/net/noise.rs tests.
// Static and ephemeral ed25519 keys come from fixed seeds. Run: node tests/js/noise_vectors.js
'use strict'
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')

const seed = (b) => Buffer.alloc(32, b)
const init = new Noise('XX', true, curve.generateKeyPair(seed(1)), { curve })
const resp = new Noise('XX', false, curve.generateKeyPair(seed(3)), { curve })
init.initialise(Buffer.alloc(0))
resp.initialise(Buffer.alloc(0))
init.e = curve.generateKeyPair(seed(2))
resp.e = curve.generateKeyPair(seed(4))

// Copy each message at once: noise-handshake zeroes ephemeral keys (which a message may alias)
// when the handshake completes.
const hex = (b) => Buffer.from(b).toString('hex')
const m1 = init.send()
console.log('msg1 ' + hex(m1))
resp.recv(m1)
const m2 = resp.send()
console.log('msg2 ' + hex(m2))
init.recv(m2)
const m3 = init.send()
console.log('msg3 ' + hex(m3))
resp.recv(m3)
console.log('hash ' + hex(init.hash))
console.log('tx ' + hex(init.tx))
console.log('rx ' + hex(init.rx))
