// JS side of tests/relay_js_relay.rs: the npm relay itself, reaching real hyperdht peers.
//
// Everything runs in this one process, on 127.0.0.1 only:
// - a hyperdht 6.34.0 testnet (`require('hyperdht/testnet')`, TESTNET_NODES nodes, default 3);
// - the npm @hyperswarm/dht-relay 0.4.3 relay (`relay(dht, stream)`) on one more DHT node of the
//   testnet, behind a WebSocket server (`ws`, one `WsStream` per socket) and a TCP server (one
//   `TcpStream`, i.e. @hyperswarm/secret-stream framing, per socket), as the package's README
//   wires it;
// - plain (not relayed) hyperdht servers on another DHT node: an echo server (key pair of seed
//   0x31: every chunk received is written back, an `end` is answered with `end`) and a hypercore
//   server (seed 0x32: `core.replicate(conn)` of a JS hypercore 11.37.1 compat core whose block i
//   is `block-<i>`, BLOCKS blocks, default 5);
// - a plain hyperdht client node (key pair of seed 0x33) that connects on command.
//
// Prints one JSON line {event:"ready", ws, tcp, echo_public_key, core_public_key, core_key,
// length, client_public_key} (keys hex), then one {event:"connection", server, remote_public_key,
// handshake_hash} per connection a server accepted. Commands, one JSON line each on stdin:
//   {"cmd":"echo","id":N,"public_key":HEX,"message":TEXT}
//     dht.connect(public_key), write TEXT, read until as many bytes came back, end;
//     prints {event:"echoed", id, remote_public_key, handshake_hash, got}.
//   {"cmd":"read","id":N,"public_key":HEX,"core_key":HEX,"length":L}
//     dht.connect(public_key), replicate the compat core core_key over it, read blocks 0..L-1;
//     prints {event:"read", id, remote_public_key, blocks:[utf-8 text]}.
// A failed command prints {event:"failed", id, error}. Exits 0 when stdin closes; exits 2 after
// MAX_SECONDS (default 300) so that it never outlives a test.
'use strict'
const http = require('http')
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const createTestnet = require('hyperdht/testnet')
const DHT = require('hyperdht')
const { WebSocketServer } = require('ws')
const { relay } = require('@hyperswarm/dht-relay')
const WsStream = require('@hyperswarm/dht-relay/ws')
const TcpStream = require('@hyperswarm/dht-relay/tcp')
const Hypercore = require('hypercore')

const NODES = Number(process.env.TESTNET_NODES || 3)
const BLOCKS = Number(process.env.BLOCKS || 5)
const MAX_SECONDS = Number(process.env.MAX_SECONDS || 300)
const COMMAND_TIMEOUT = 30000

const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const hex = (b) => b.toString('hex')
const dirs = []

function tmpdir () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-relay-testnet-'))
  dirs.push(dir)
  return dir
}

function listen (server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

function opened (conn) {
  return new Promise((resolve, reject) => {
    conn.once('open', resolve)
    conn.once('error', reject)
  })
}

function withTimeout (promise, what) {
  let timer
  const limit = new Promise((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out`)), COMMAND_TIMEOUT)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

// Reads `n` bytes from `conn`.
function collect (conn, n) {
  return new Promise((resolve, reject) => {
    const chunks = []
    let got = 0
    conn.on('data', (c) => {
      chunks.push(c)
      got += c.length
      if (got >= n) resolve(Buffer.concat(chunks))
    })
    conn.once('error', reject)
    conn.once('close', () => { if (got < n) reject(new Error(`closed after ${got} of ${n} bytes`)) })
  })
}

async function echoCommand (node, keyPair, cmd) {
  const conn = node.connect(Buffer.from(cmd.public_key, 'hex'), { keyPair })
  await opened(conn)
  const message = Buffer.from(cmd.message)
  const reply = collect(conn, message.length)
  conn.write(message)
  const got = await reply
  conn.end()
  return {
    event: 'echoed',
    id: cmd.id,
    remote_public_key: hex(conn.remotePublicKey),
    handshake_hash: hex(conn.handshakeHash),
    got: got.toString()
  }
}

async function readCommand (node, keyPair, cmd) {
  const core = new Hypercore(tmpdir(), Buffer.from(cmd.core_key, 'hex'), { compat: true })
  await core.ready()
  const conn = node.connect(Buffer.from(cmd.public_key, 'hex'), { keyPair })
  conn.on('error', () => {})
  core.replicate(conn).on('error', () => {})
  await opened(conn)
  const blocks = []
  for (let i = 0; i < cmd.length; i++) blocks.push((await core.get(i)).toString())
  conn.end()
  await core.close()
  return { event: 'read', id: cmd.id, remote_public_key: hex(conn.remotePublicKey), blocks }
}

async function main () {
  const testnet = await createTestnet(NODES, { host: '127.0.0.1' })

  // The relaying node, as `new DHT()` is in the package's bin.
  const relayNode = testnet.createNode()
  await relayNode.fullyBootstrapped()
  const httpServer = http.createServer()
  const wss = new WebSocketServer({ server: httpServer })
  wss.on('connection', (socket) => relay(relayNode, new WsStream(false, socket)))
  const tcpServer = net.createServer((socket) => relay(relayNode, new TcpStream(false, socket)))
  const wsPort = await listen(httpServer)
  const tcpPort = await listen(tcpServer)

  // Plain hyperdht servers on their own node.
  const serverNode = testnet.createNode()
  await serverNode.fullyBootstrapped()
  const report = (server, conn) => out({
    event: 'connection',
    server,
    remote_public_key: hex(conn.remotePublicKey),
    handshake_hash: hex(conn.handshakeHash)
  })
  const echoKeys = DHT.keyPair(Buffer.alloc(32, 0x31))
  const echo = serverNode.createServer((conn) => {
    report('echo', conn)
    conn.on('error', () => {})
    conn.on('data', (d) => conn.write(d))
    conn.on('end', () => conn.end())
  })
  await echo.listen(echoKeys)

  const core = new Hypercore(tmpdir(), { compat: true })
  await core.ready()
  for (let i = 0; i < BLOCKS; i++) await core.append(Buffer.from(`block-${i}`))
  const coreKeys = DHT.keyPair(Buffer.alloc(32, 0x32))
  const coreServer = serverNode.createServer((conn) => {
    report('core', conn)
    conn.on('error', () => {})
    core.replicate(conn).on('error', () => {})
  })
  await coreServer.listen(coreKeys)

  // A plain hyperdht client for connects to servers that listen through the relay.
  const clientNode = testnet.createNode()
  await clientNode.fullyBootstrapped()
  const clientKeys = DHT.keyPair(Buffer.alloc(32, 0x33))

  out({
    event: 'ready',
    ws: `ws://127.0.0.1:${wsPort}`,
    tcp: `tcp://127.0.0.1:${tcpPort}`,
    echo_public_key: hex(echoKeys.publicKey),
    core_public_key: hex(coreKeys.publicKey),
    core_key: hex(core.key),
    length: core.length,
    client_public_key: hex(clientKeys.publicKey)
  })

  const commands = { echo: echoCommand, read: readCommand }
  const lines = readline.createInterface({ input: process.stdin })
  lines.on('line', (line) => {
    let cmd
    try {
      cmd = JSON.parse(line)
    } catch (err) {
      out({ event: 'failed', id: null, error: `not JSON: ${line}` })
      return
    }
    const run = commands[cmd.cmd]
    if (!run) {
      out({ event: 'failed', id: cmd.id, error: `unknown command ${cmd.cmd}` })
      return
    }
    withTimeout(run(clientNode, clientKeys, cmd), cmd.cmd).then(out, (err) => {
      out({ event: 'failed', id: cmd.id, error: err.message })
    })
  })
  lines.on('close', async () => {
    httpServer.close()
    tcpServer.close()
    await core.close().catch(() => {})
    await testnet.destroy().catch(() => {})
    for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  })
}

setTimeout(() => { console.error('js-relay-testnet: time limit'); process.exit(2) }, MAX_SECONDS * 1000).unref()
main().catch((err) => { console.error('js-relay-testnet:', err); process.exit(1) })
