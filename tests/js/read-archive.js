// JS side of tests/interop_archive.rs: a JS hypercore 11 reader of a dat-social archive.
//
//   node read-archive.js <port> <archive key hex>
//
// Connects to 127.0.0.1:<port> (a `dat-social host`), replicates the archive core live over
// secret-stream + protomux (core.replicate(true) piped to the socket), and after every change in
// length prints one JSON line: {"length": n, "profile": {...}, "session": {...}} with the current
// files, read the way docs/ARCHIVE.md says (scan back for the last put of each path). Every block
// hypercore hands us was verified against the signed merkle tree. Exits on stdin EOF.
'use strict'
const net = require('net')
const os = require('os')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore')

const [port, keyHex] = process.argv.slice(2)
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

async function files (core, length) {
  const found = {}
  for (let i = length - 1; i >= 0 && (!found.profile || !found.session); i--) {
    const entry = JSON.parse(await core.get(i))
    if (i === 0) {
      if (entry.type !== 'header' || entry.protocol !== 'dat-social/archive') throw new Error('bad header')
      break
    }
    const name = entry.path === 'profile.json' ? 'profile' : entry.path === 'session.json' ? 'session' : null
    if (!name || name in found) continue
    found[name] = entry.type === 'put' ? JSON.parse(entry.value) : null
  }
  return found
}

async function main () {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dat-social-js-archive-'))
  const core = new Hypercore(dir, Buffer.from(keyHex, 'hex'), { compat: true })
  await core.ready()
  const socket = net.connect({ port: Number(port), host: '127.0.0.1', noDelay: true })
  const stream = core.replicate(true)
  socket.pipe(stream).pipe(socket)
  stream.on('error', (err) => out({ error: err.message }))
  socket.on('error', (err) => out({ error: err.message }))
  core.download({ start: 0, end: -1 })

  let reported = 0
  let busy = false
  const report = async () => {
    if (busy || core.length === reported) return
    busy = true
    try {
      const length = core.length
      const f = await files(core, length)
      reported = length
      out({ length, profile: f.profile, session: f.session })
    } catch (err) {
      out({ error: err.message })
    } finally {
      busy = false
      if (core.length !== reported) report()
    }
  }
  core.on('append', report)
  await core.update({ wait: true })
  report()

  process.stdin.on('data', () => {})
  process.stdin.on('end', async () => {
    socket.destroy()
    await core.close()
    fs.rmSync(dir, { recursive: true, force: true })
    process.exit(0)
  })
}

main().catch((err) => { out({ error: err.stack }); process.exit(1) })
