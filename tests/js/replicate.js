// JS side of tests/replication_js.rs: a JS hypercore 11.37.1 peer replicating over plain TCP
// (core.replicate(isInitiator) piped to a socket, as the Rust side expects).
//
// Block i always holds the bytes `block-<i>`. Output: one line per event on stdout.
//
//   node replicate.js read <port> <keyhex> <target>
//     Connects to 127.0.0.1:<port> as initiator, replicates the compat core <keyhex> eagerly and
//     live, reads blocks 0.. in order and checks each. Prints `have <n>` when the first n blocks
//     are verified and block n is not there yet, `done <n>` at <target>, `bad <i> <hex>` on a
//     wrong block.
//
//   node replicate.js lobby <port>
//     Connects to 127.0.0.1:<port> with @hyperswarm/secret-stream (initiator) + protomux, opens
//     channel `dat-social/lobby` (id `room-1`, raw messages), sends `hello from js`, answers each
//     message m with `echo:<m>` (same type), prints `remote <hex public key>` and `got <m>`.
//
//   node replicate.js write <initial>
//     Creates a compat core with <initial> blocks, listens on 127.0.0.1:0 as responder, prints
//     `key <hex>` and `port <port>`. Commands on stdin: `append <k>` appends k blocks one call at a
//     time (prints `length <n>` after), `quit` exits.
'use strict'
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const Hypercore = require('hypercore')
const SecretStream = require('@hyperswarm/secret-stream')
const Protomux = require('protomux')
const c = require('compact-encoding')

const expected = (i) => Buffer.from(`block-${i}`)
const out = (line) => process.stdout.write(line + '\n')

async function read (port, keyHex, target) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-read-'))
  const core = new Hypercore(dir, Buffer.from(keyHex, 'hex'), { compat: true })
  await core.ready()
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
  const stream = core.replicate(true)
  socket.pipe(stream).pipe(socket)
  stream.on('error', (err) => out(`stream-error ${err.message}`))
  socket.on('error', (err) => out(`socket-error ${err.message}`))
  core.download({ start: 0, end: -1 })

  for (let i = 0; i < target; i++) {
    const block = await core.get(i)
    if (!block.equals(expected(i))) {
      out(`bad ${i} ${block.toString('hex')}`)
      process.exit(1)
    }
    // Report progress when caught up (the next block is not here yet), not after every block:
    // printing 1000s of lines would slow the reader down.
    if (!(await core.has(i + 1))) out(`have ${i + 1}`)
  }
  out(`done ${target}`)
  socket.destroy()
  await core.close()
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

async function write (initial) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-write-'))
  const core = new Hypercore(dir, { compat: true })
  await core.ready()
  const batch = []
  for (let i = 0; i < initial; i++) batch.push(expected(i))
  if (batch.length) await core.append(batch)

  const server = net.createServer({ noDelay: true }, (socket) => {
    const stream = core.replicate(false)
    socket.pipe(stream).pipe(socket)
    stream.on('error', (err) => out(`stream-error ${err.message}`))
    socket.on('error', (err) => out(`socket-error ${err.message}`))
  })
  server.listen(0, '127.0.0.1', () => {
    out(`key ${core.key.toString('hex')}`)
    out(`port ${server.address().port}`)
  })

  const rl = readline.createInterface({ input: process.stdin })
  for await (const line of rl) {
    const [cmd, arg] = line.trim().split(/\s+/)
    if (cmd === 'append') {
      const k = Number(arg)
      for (let j = 0; j < k; j++) await core.append(expected(core.length))
      out(`length ${core.length}`)
    } else if (cmd === 'quit') {
      break
    }
  }
  server.close()
  await core.close()
  fs.rmSync(dir, { recursive: true, force: true })
  process.exit(0)
}

async function lobby (port) {
  const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
  const stream = new SecretStream(true, socket)
  stream.on('error', (err) => out(`stream-error ${err.message}`))
  const mux = Protomux.from(stream)
  const channel = mux.createChannel({
    protocol: 'dat-social/lobby',
    id: Buffer.from('room-1'),
    onclose: () => { out('closed'); stream.destroy() }
  })
  const text = channel.addMessage({
    encoding: c.raw,
    onmessage: (m) => {
      // Large messages are reported by size only.
      out(m.length > 100 ? `got ${m.length} bytes` : `got ${m.toString()}`)
      text.send(Buffer.concat([Buffer.from('echo:'), m]))
    }
  })
  channel.addMessage({
    encoding: c.raw,
    onmessage: (m) => { out(`got1 ${m.toString()}`); typed.send(Buffer.from(`echo:${m}`)) }
  })
  const typed = channel.messages[1]
  channel.open()
  await stream.opened
  out(`remote ${stream.remotePublicKey.toString('hex')}`)
  text.send(Buffer.from('hello from js'))
  stream.on('close', () => process.exit(0))
}

const [mode, ...args] = process.argv.slice(2)
const fail = (err) => { out(`error ${err && err.stack ? err.stack : err}`); process.exit(2) }
if (mode === 'read') read(Number(args[0]), args[1], Number(args[2])).catch(fail)
else if (mode === 'write') write(Number(args[0])).catch(fail)
else if (mode === 'lobby') lobby(Number(args[0])).catch(fail)
else fail(new Error('usage: replicate.js read <port> <keyhex> <target> | write <initial> | lobby <port>'))
