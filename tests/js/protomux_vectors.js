// Prints hex of protomux 3.12.1 frames for the Rust unit tests in src/net/protomux.rs.
// Run: node tests/js/protomux_vectors.js
'use strict'
const Protomux = require('protomux')
const c = require('compact-encoding')
const { Duplex } = require('streamx')

const frames = []
const stream = new Duplex({ write (data, cb) { frames.push(Buffer.from(data).toString('hex')); cb(null) } })
const mux = new Protomux(stream)
const ch = mux.createChannel({
  protocol: 'test',
  id: Buffer.from([1, 2]),
  handshake: c.uint,
  messages: [{ encoding: c.raw }, { encoding: c.raw }]
})
ch.open(5)
ch.messages[1].send(Buffer.from('hi'))
mux.cork()
ch.messages[0].send(Buffer.from('a'))
ch.messages[1].send(Buffer.from('bc'))
mux.uncork()
ch.close()
setTimeout(() => { for (const f of frames) console.log(f) }, 50)
