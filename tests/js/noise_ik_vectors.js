// Prints a deterministic Noise IK handshake as hyperdht 6.34.0 runs it between peers and as a
// non-custodial @hyperswarm/dht-relay 0.4.3 client runs it (noise-handshake 4.2.0 'IK' +
// noise-curve-ed 2.1.0, prologue NS.PEER_HANDSHAKE, payloads = encoded hyperdht noisePayload),
// plus the values derived from the handshake hash and a few noisePayload encodings, for the
// tests of src/net/noise.rs and src/net/hyperdht.rs. Static and ephemeral ed25519 keys come
// from fixed seeds. Run: node tests/js/noise_ik_vectors.js
'use strict'
const Noise = require('noise-handshake')
const curve = require('noise-curve-ed')
const c = require('compact-encoding')
const sodium = require('sodium-universal')
const SecretStream = require('@hyperswarm/secret-stream')
const { NS } = require('hyperdht/lib/constants')
const { noisePayload } = require('hyperdht/lib/messages')

const seed = (b) => Buffer.alloc(32, b)
const hex = (b) => Buffer.from(b).toString('hex')
const serverKeys = curve.generateKeyPair(seed(5))
const init = new Noise('IK', true, curve.generateKeyPair(seed(6)), { curve })
const resp = new Noise('IK', false, serverKeys, { curve })
init.initialise(NS.PEER_HANDSHAKE, serverKeys.publicKey)
resp.initialise(NS.PEER_HANDSHAKE)
init.e = curve.generateKeyPair(seed(7))
resp.e = curve.generateKeyPair(seed(8))

const p1 = c.encode(noisePayload, {
  version: 1, error: 0, firewall: 1,
  addresses4: [{ host: '127.0.0.1', port: 49737 }],
  udx: { reusableSocket: true, id: 7, seq: 0 },
  secretStream: {}
})
const p2 = c.encode(noisePayload, { version: 1, error: 0, firewall: 0 })
console.log('prologue ' + hex(NS.PEER_HANDSHAKE))
console.log('payload1 ' + hex(p1))
console.log('payload2 ' + hex(p2))
// Copy each message at once: noise-handshake zeroes ephemeral keys when the handshake completes.
const m1 = Buffer.from(init.send(p1))
console.log('msg1 ' + hex(m1))
const got1 = resp.recv(m1)
if (!Buffer.from(got1).equals(p1)) throw new Error('payload 1 mismatch')
const m2 = Buffer.from(resp.send(p2))
console.log('msg2 ' + hex(m2))
const got2 = init.recv(m2)
if (!Buffer.from(got2).equals(p2)) throw new Error('payload 2 mismatch')
console.log('hash ' + hex(init.hash))
console.log('tx ' + hex(init.tx))
console.log('rx ' + hex(init.rx))
const holepunch = Buffer.alloc(32)
sodium.crypto_generichash(holepunch, NS.PEER_HOLEPUNCH, init.hash)
console.log('holepunch ' + hex(holepunch))
console.log('id_initiator ' + hex(SecretStream.id(init.hash, true)))
console.log('id_responder ' + hex(SecretStream.id(init.hash, false)))

// noisePayload encodings with every optional field.
const full = {
  version: 1, error: 3, firewall: 2,
  holepunch: { id: 300, relays: [{ relayAddress: { host: '10.0.0.1', port: 1 }, peerAddress: { host: '10.0.0.2', port: 2 } }] },
  addresses4: [{ host: '192.168.1.2', port: 65535 }, { host: '1.2.3.4', port: 80 }],
  addresses6: [{ host: '::1', port: 443 }],
  udx: { reusableSocket: false, id: 70000, seq: 5 },
  secretStream: {},
  relayThrough: { publicKey: seed(9), token: seed(10) },
  relayAddresses: [{ host: '8.8.8.8', port: 53 }]
}
console.log('full ' + hex(c.encode(noisePayload, full)))
console.log('empty_relays ' + hex(c.encode(noisePayload, { version: 1, error: 0, firewall: 0, relayAddresses: [] })))
