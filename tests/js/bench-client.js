// The client workload of `cargo bench --bench relay` (benches/relay.rs), identical against our
// relay and the JS relay: npm @hyperswarm/dht-relay 0.4.3 relayed nodes, custodial (the client's
// default). Prints one JSON line per result on stdout; every wait is bounded (TIMEOUT_S).
//
//   node bench-client.js connect ws://H:P N
//       one relayed server; then N times a new session (new WebSocket + DHT, fresh key pair)
//       connects to it: `connect_ms` = connect() → stream open, `session_ms` = new WebSocket → open.
//       3 warm-up connects are not counted.
//   node bench-client.js throughput ws ws://H:P BYTES | throughput tcp H:P BYTES
//       relayed client → relayed server, BYTES in 64 KiB writes; time from the first write to the
//       server holding every byte. The writer waits for 'drain' and keeps at most 4 MiB queued
//       in its own socket.
//   node bench-client.js slow ws ws://H:P BYTES PAUSE_MS
//       as throughput, but the server's WebSocket stops reading (socket paused) for PAUSE_MS
//       after the stream opens, then reads everything.
//   node bench-client.js idle ws://H:P PAIRS HOLD_S
//       PAIRS relayed servers and PAIRS relayed clients (2 × PAIRS sessions), each client
//       connected to its own server: every session holds one WebSocket and one open stream.
//       Prints {"event":"open",...} when all are open, holds them until stdin closes or HOLD_S
//       seconds pass, then prints {"event":"held","alive":N,...}: how many WebSockets were still
//       open.
const DHT = require('@hyperswarm/dht-relay')
const crypto = require('crypto')
const net = require('net')
const WebSocket = require('ws')
const WsStream = require('@hyperswarm/dht-relay/ws')
const TcpStream = require('@hyperswarm/dht-relay/tcp')

const TIMEOUT_S = Number(process.env.TIMEOUT_S || 300)
const CHUNK = 65536
const HIGH = 4 * 1024 * 1024

const out = (obj) => console.log(JSON.stringify(obj))
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// A relayed node on a new session. `raw` is the transport socket (ws.WebSocket or net.Socket).
function session (transport, address, keyPair) {
  let raw, stream
  if (transport === 'ws') {
    raw = new WebSocket(address)
    stream = new WsStream(true, raw)
  } else {
    const [host, port] = address.split(':')
    raw = net.connect(Number(port), host)
    stream = new TcpStream(true, raw)
  }
  const node = new DHT(stream, { keyPair: keyPair || DHT.keyPair() })
  node.on('error', () => {})
  return { node, raw }
}

function queued (raw) {
  return raw.bufferedAmount !== undefined ? raw.bufferedAmount : raw.writableLength
}

function opened (stream) {
  return new Promise((resolve, reject) => {
    stream.once('open', resolve)
    stream.once('error', reject)
    stream.once('close', () => reject(new Error('closed before open')))
  })
}

// A relayed server on its own session; `onStream` gets each incoming stream.
async function server (transport, address, onStream) {
  const keyPair = DHT.keyPair()
  const s = session(transport, address, keyPair)
  const srv = s.node.createServer({ firewall: () => false }, onStream)
  await srv.listen(keyPair)
  return { ...s, srv, publicKey: keyPair.publicKey }
}

async function connectBench (address, n) {
  const srv = await server('ws', address, (stream) => {
    stream.on('error', () => {})
    stream.on('end', () => stream.end())
  })
  const connectMs = []
  const sessionMs = []
  for (let i = 0; i < n + 3; i++) {
    const t0 = process.hrtime.bigint()
    const c = session('ws', address)
    const t1 = process.hrtime.bigint()
    const stream = c.node.connect(srv.publicKey)
    stream.on('error', () => {})
    await opened(stream)
    const t2 = process.hrtime.bigint()
    if (i >= 3) {
      connectMs.push(Number(t2 - t1) / 1e6)
      sessionMs.push(Number(t2 - t0) / 1e6)
    }
    // Close gently (end both ways) so neither relay sees an errored stream.
    stream.end()
    await new Promise((resolve) => { stream.once('close', resolve); stream.resume() })
    await c.node.destroy()
  }
  out({ connect_ms: connectMs, session_ms: sessionMs })
}

async function transfer (transport, address, bytes, pauseMs) {
  let received = 0
  let done
  const finished = new Promise((resolve) => { done = resolve })
  const srv = await server(transport, address, (stream) => {
    stream.on('error', () => {})
    stream.on('end', () => stream.end())
    stream.on('data', (chunk) => {
      received += chunk.length
      if (received >= bytes) done(process.hrtime.bigint())
    })
  })
  const c = session(transport, address)
  const stream = c.node.connect(srv.publicKey)
  stream.on('error', () => {})
  await opened(stream)
  if (pauseMs) {
    // The slow reader: the receiving session stops reading its socket, so the relay's writes
    // towards it back up; it reads again after pauseMs.
    srv.raw.pause()
    setTimeout(() => srv.raw.resume(), pauseMs)
  }
  const block = crypto.randomBytes(CHUNK)
  const t0 = process.hrtime.bigint()
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    const more = stream.write(sent + CHUNK <= bytes ? block : block.subarray(0, bytes - sent))
    if (!more) await new Promise((resolve) => stream.once('drain', resolve))
    while (queued(c.raw) > HIGH) await sleep(1)
  }
  const t1 = await finished
  const seconds = Number(t1 - t0) / 1e9
  out({ bytes, seconds, mb_per_s: bytes / 1e6 / seconds, pause_ms: pauseMs || 0 })
  // Close gently (end both ways) so neither relay sees an errored stream.
  stream.end()
  await new Promise((resolve) => { stream.once('close', resolve); stream.resume() })
  await c.node.destroy()
  await srv.node.destroy()
}

async function idleBench (address, pairs, holdS) {
  const t0 = Date.now()
  const raws = []
  const held = []
  const BATCH = 50
  for (let i = 0; i < pairs; i += BATCH) {
    const batch = []
    for (let j = i; j < Math.min(i + BATCH, pairs); j++) {
      batch.push((async () => {
        const srv = await server('ws', address, (stream) => { stream.on('error', () => {}); held.push(stream) })
        const c = session('ws', address)
        const stream = c.node.connect(srv.publicKey)
        stream.on('error', () => {})
        await opened(stream)
        raws.push(srv.raw, c.raw)
        held.push(srv, c, stream)
      })())
    }
    await Promise.all(batch)
  }
  out({ event: 'open', sessions: 2 * pairs, ms: Date.now() - t0 })
  await new Promise((resolve) => {
    process.stdin.on('end', resolve)
    process.stdin.on('close', resolve)
    process.stdin.resume()
    setTimeout(resolve, holdS * 1000)
  })
  // Held: sessions whose WebSocket is still open after the hold (the relays ping every 15 s).
  const alive = raws.filter((raw) => raw.readyState === WebSocket.OPEN).length
  out({ event: 'held', sessions: 2 * pairs, alive, held_s: (Date.now() - t0) / 1000 })
  process.exit(0)
}

async function main () {
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'connect') return connectBench(args[0], Number(args[1]))
  if (mode === 'throughput') return transfer(args[0], args[1], Number(args[2]), 0)
  if (mode === 'slow') return transfer(args[0], args[1], Number(args[2]), Number(args[3]))
  if (mode === 'idle') return idleBench(args[0], Number(args[1]), Number(args[2]))
  throw new Error('usage: bench-client.js connect|throughput|slow|idle …')
}

setTimeout(() => { console.error('bench-client: timed out'); process.exit(2) }, TIMEOUT_S * 1000).unref()
main().then(() => process.exit(0), (err) => { console.error('bench-client:', err); process.exit(1) })
