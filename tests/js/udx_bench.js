// udx-native 1.21.3 alone, for benches/udx.rs: BYTES (default 64 MiB) one way between two
// streams on two sockets of one process on 127.0.0.1, in 64 KiB writes (waiting for drain).
// Prints {"bytes": n, "ms": elapsed from the first write to the last byte read}.
'use strict'
const UDX = require('udx-native')

const BYTES = Number(process.env.BYTES || 64 * 1024 * 1024)
const udx = new UDX()
const sa = udx.createSocket()
const sb = udx.createSocket()
sa.bind(0, '127.0.0.1')
sb.bind(0, '127.0.0.1')
const a = udx.createStream(1)
const b = udx.createStream(2)
a.connect(sa, 2, sb.address().port, '127.0.0.1')
b.connect(sb, 1, sa.address().port, '127.0.0.1')

let got = 0
let start = 0
b.on('data', (d) => {
  got += d.length
  if (got === BYTES) {
    console.log(JSON.stringify({ bytes: BYTES, ms: Number(process.hrtime.bigint() - start) / 1e6 }))
    a.destroy()
    b.destroy()
    sa.close()
    sb.close()
  }
})
;(async () => {
  const chunk = Buffer.alloc(64 * 1024, 7)
  start = process.hrtime.bigint()
  for (let sent = 0; sent < BYTES; sent += chunk.length) {
    if (!a.write(chunk)) await new Promise((resolve) => a.once('drain', resolve))
  }
})()
