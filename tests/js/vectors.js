// Reference vectors and a proof verifier from JS hypercore 11.37.1 (compat mode), for
// tests/hypercore_js_vectors.rs. Install the packages first: npm ci --prefix tests/js
//
//   node tests/js/vectors.js writer
//     Builds a compat core from a fixed seed, and a JS replica, and runs SCRIPT: appends on the
//     writer, and requests made the way the JS replicator makes them (nodes = the replica's
//     missingNodes). Prints one JSON object: the writer's key, discovery key, tree hash,
//     signature, roots, and for each request the wire bytes of the request and of the writer's
//     answer (core.proof, encoded as wire.data), after applying that answer to the JS replica.
//
//   node tests/js/vectors.js reader < {"key": hex, "messages": [hex wire.data, ...]}
//     Applies each message to a fresh JS replica of `key` with core.applyProof and prints
//     {"results": [{"ok": bool, "error": string|null}], "length": n, "blocks": [hex|null]}.
'use strict'

const os = require('os')
const fs = require('fs')
const path = require('path')
const Hypercore = require('hypercore')
const crypto = require('hypercore-crypto')
const c = require('compact-encoding')
const m = require('hypercore/lib/messages.js')

const SEED = Buffer.alloc(32, 7)

// Block i: a few repeated bytes; block 4 is empty to cover zero-sized leaves.
function block(i) {
  if (i === 4) return Buffer.alloc(0)
  return Buffer.from(`block-${i};`.repeat((i % 5) + 1))
}

// Requests the JS replicator could send. `nodes: 'missing'` is filled from the replica.
const SCRIPT = [
  { append: 11 },
  { replica: 'a', request: { upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'a', request: { block: 3 } },
  { replica: 'a', request: { block: 10 } },
  { replica: 'a', request: { block: 4 } },
  { replica: 'a', request: { hash: 2 * 6 } },
  { replica: 'b', request: { block: 5, upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'b', request: { block: 9 } },
  { append: 9 },
  { replica: 'a', request: { block: 15, upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'b', request: { upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'b', request: { block: 0 } },
  { append: 5 },
  { replica: 'a', request: { upgrade: { start: 'length', length: 2 } } },
  { append: 7 },
  { replica: 'a', request: { seek: 'byteOf27', upgrade: { start: 'length', length: 'rest' } } },
  { append: 3 },
  { replica: 'a', request: { block: 1, upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'a', request: { block: 33 } },
  { replica: 'c', request: { hash: 2 * 20, upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'c', request: { block: 20 } },
  { replica: 'd', request: { block: 2, upgrade: { start: 'length', length: 'rest' } } },
  { replica: 'd', request: { hash: 2 * 30 + 1 } },
  { replica: 'd', request: { block: 34 } },
  { replica: 'c', request: { upgrade: { start: 'length', length: 50 } }, invalid: true }
]

async function tmp(prefix) {
  return fs.promises.mkdtemp(path.join(os.tmpdir(), prefix))
}

const hex = (b) => (b ? Buffer.from(b).toString('hex') : null)
const nodeJson = (n) => ({ index: n.index, size: n.size, hash: hex(n.hash) })

// What the replicator does (_getProof + fulfill): generate, then flush the read batch, then
// settle. (core.proof() flushes too early for seek proofs in 11.37.1.)
async function jsProof(core, req) {
  const { MerkleTree } = require('hypercore/lib/merkle-tree.js')
  const rx = core.state.storage.read()
  const blockPromise = req.block ? rx.getBlock(req.block.index) : null
  let proof
  try {
    proof = await MerkleTree.proof(core.state, rx, req)
  } finally {
    rx.tryFlush()
  }
  const settled = await proof.settle()
  if (blockPromise) settled.block.value = await blockPromise
  return settled
}

async function writer() {
  const dirs = []
  const keyPair = crypto.keyPair(SEED)
  const wdir = await tmp('dat-social-w-')
  dirs.push(wdir)
  const core = new Hypercore(wdir, { keyPair, compat: true })
  await core.ready()

  const replicas = {}
  async function replica(name) {
    if (!replicas[name]) {
      const dir = await tmp('dat-social-r-')
      dirs.push(dir)
      replicas[name] = new Hypercore(dir, core.key)
      await replicas[name].ready()
    }
    return replicas[name]
  }

  const steps = []
  let id = 0
  for (const step of SCRIPT) {
    if (step.append) {
      const blocks = []
      for (let i = 0; i < step.append; i++) blocks.push(block(core.length + i))
      await core.append(blocks)
      steps.push({ append: step.append, length: core.length })
      continue
    }
    const r = await replica(step.replica)
    const s = step.request
    const req = {
      id: ++id,
      fork: 0,
      block: null,
      hash: null,
      seek: null,
      upgrade: null,
      manifest: false,
      priority: 0
    }
    if (s.block !== undefined) req.block = { index: s.block, nodes: await r.missingNodes(s.block) }
    if (s.hash !== undefined) {
      req.hash = {
        index: s.hash,
        nodes: await require('hypercore/lib/merkle-tree.js').MerkleTree.missingNodes(
          r.core.state,
          s.hash,
          r.length
        )
      }
    }
    if (s.seek === 'byteOf27') {
      let bytes = 0
      for (let i = 0; i < 27; i++) bytes += block(i).byteLength
      req.seek = { bytes: bytes + 3, padding: 0 }
    }
    if (s.upgrade) {
      req.upgrade = {
        start: r.length,
        length: s.upgrade.length === 'rest' ? core.length - r.length : s.upgrade.length
      }
    }
    const out = {
      replica: step.replica,
      writerLength: core.length,
      replicaLength: r.length,
      request: hex(c.encode(m.wire.request, req))
    }
    try {
      const proof = await jsProof(core, req)
      const data = { request: req.id, ...proof }
      out.data = hex(c.encode(m.wire.data, data))
      out.applied = await r.applyProof(c.decode(m.wire.data, Buffer.from(out.data, 'hex')))
      out.replicaLengthAfter = r.length
    } catch (err) {
      if (!step.invalid) throw err
      out.error = err.code || err.message
    }
    steps.push(out)
  }

  const info = {
    key: hex(core.key),
    discoveryKey: hex(core.discoveryKey),
    length: core.length,
    byteLength: core.byteLength,
    fork: core.fork,
    treeHash: hex(await core.treeHash()),
    signature: hex(core.core.state.signature),
    roots: core.core.state.roots.map(nodeJson),
    blocks: Array.from({ length: core.length }, (_, i) => hex(block(i))),
    steps
  }

  for (const r of Object.values(replicas)) await r.close()
  await core.close()
  for (const d of dirs) await fs.promises.rm(d, { recursive: true, force: true })
  process.stdout.write(JSON.stringify(info) + '\n')
}

async function reader() {
  const input = JSON.parse(fs.readFileSync(0, 'utf8'))
  const dir = await tmp('dat-social-jr-')
  const core = new Hypercore(dir, Buffer.from(input.key, 'hex'))
  await core.ready()
  const results = []
  for (const msg of input.messages) {
    try {
      const data = c.decode(m.wire.data, Buffer.from(msg, 'hex'))
      const ok = await core.applyProof(data)
      results.push({ ok: !!ok, error: ok ? null : 'applyProof returned false' })
    } catch (err) {
      results.push({ ok: false, error: String((err && (err.code || err.message)) || err) })
    }
  }
  const blocks = []
  for (let i = 0; i < core.length; i++) {
    blocks.push((await core.has(i)) ? hex(await core.get(i, { wait: false })) : null)
  }
  const out = { results, length: core.length, byteLength: core.byteLength, blocks }
  await core.close()
  await fs.promises.rm(dir, { recursive: true, force: true })
  process.stdout.write(JSON.stringify(out) + '\n')
}

const mode = process.argv[2]
const run = mode === 'writer' ? writer : mode === 'reader' ? reader : null
if (!run) {
  console.error('usage: node vectors.js writer|reader')
  process.exit(2)
}
run().catch((err) => {
  console.error(err)
  process.exit(1)
})
