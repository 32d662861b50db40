// The JS relay for `cargo bench --bench relay` (benches/relay.rs): npm @hyperswarm/dht-relay 0.4.3
// `relay(dht, stream)` on a hyperdht 6.34.0 `testnet` of 5 nodes on 127.0.0.1, behind a
// WebSocket server (ws) and a TCP server (secret-stream framing), wired as the package's README
// shows. Everything runs in this one process, which is the one the bench measures.
// Prints `{"event":"listening","ws":"ws://127.0.0.1:P","tcp":"tcp://127.0.0.1:P","pid":N}`.
// Stops on SIGTERM/SIGINT, or after MAX_SECONDS (default 1800) so it never outlives a bench.
const http = require('http')
const net = require('net')
const createTestnet = require('hyperdht/testnet')
const { WebSocketServer } = require('ws')
const { relay } = require('@hyperswarm/dht-relay')
const WsStream = require('@hyperswarm/dht-relay/ws')
const TcpStream = require('@hyperswarm/dht-relay/tcp')

const NODES = Number(process.env.TESTNET_NODES || 5)
const MAX_SECONDS = Number(process.env.MAX_SECONDS || 1800)

function listen (server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

async function main () {
  const testnet = await createTestnet(NODES, { host: '127.0.0.1' })
  // The relaying node: one more DHT node on the testnet, as `new DHT()` is in the package's bin.
  const dht = testnet.createNode()
  await dht.fullyBootstrapped()

  const httpServer = http.createServer()
  const wss = new WebSocketServer({ server: httpServer })
  wss.on('connection', (socket) => relay(dht, new WsStream(false, socket)))
  const tcpServer = net.createServer((socket) => relay(dht, new TcpStream(false, socket)))

  const wsPort = await listen(httpServer)
  const tcpPort = await listen(tcpServer)
  console.log(JSON.stringify({
    event: 'listening',
    ws: `ws://127.0.0.1:${wsPort}`,
    tcp: `tcp://127.0.0.1:${tcpPort}`,
    pid: process.pid
  }))

  const stop = () => process.exit(0)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  setTimeout(stop, MAX_SECONDS * 1000).unref()
  // Keep the event loop alive until a signal or the time limit.
  setInterval(() => {}, 1 << 30)
}

main().catch((err) => { console.error('bench-js-relay:', err); process.exit(1) })
