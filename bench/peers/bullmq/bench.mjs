#!/usr/bin/env node
// BullMQ peer for `cargo xtask bench` (issue 6): the SPANE benchmark workloads written the way a BullMQ user
// would write them, run in ONE process (one Worker with the given concurrency, plus the producer).
//
//   node bench.mjs --workload b1|b2|b3|b5 [--executions N] [--concurrency C] [--prefix P]
//                  [--redis redis://127.0.0.1:6379] [--timeout SECONDS]
//
// Workloads (trivial pass-through processors, one queue named after the workload, under BullMQ `prefix` P):
//   b1_chain   N executions (default 1000) of a 10-node chain: each job, when processed, adds the next node's
//              job; the 10th node's completion marks the execution done.
//   b2_fanout  N executions (default 200) of 1 -> 50 -> 1: the root job, when processed, adds a FlowProducer
//              flow whose parent is the join and whose 50 children are the middle nodes. BullMQ runs the parent
//              exactly once, after every child has completed; the join reads its children's values.
//   b3_latency N runs (default 50) of one 10-node chain at a time: per-hop latency = (enqueue of node 1 ->
//              completion of node 10) / 10; reports p50 / p99 in ms. Two warm-up runs are not counted.
//   b5_wide    N executions (default 20) of 1 -> 1000 -> 1, built like b2.
//
// Jobs use `removeOnComplete: true` (what a production BullMQ user sets so Redis does not grow without bound);
// failed jobs are kept. Completion is verified from the Worker's `completed` events: every node of every
// execution must complete exactly once, every join must see all of its children's values, and no job may fail.
//
// stdout: exactly one JSON line at the end. Everything else goes to stderr.
// Exit status: 0 after a run (even if not all executions completed: `all_completed` says so); 1 on a usage
// error or when Redis cannot be reached.
// Cleanup: the queue is obliterated (`force: true`) before and after the run, and any key left under
// `<prefix>:<queue>:` is deleted.

import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { Queue, Worker, FlowProducer } from 'bullmq';

// ioredis comes with bullmq; resolve it through bullmq so no other dependency is declared.
const require = createRequire(import.meta.url);
const IORedis = createRequire(require.resolve('bullmq'))('ioredis');

// Keep stdout for the single JSON line, whatever a library prints.
console.log = (...args) => console.error(...args);
console.info = (...args) => console.error(...args);
const log = (msg) => process.stderr.write(`[bullmq-peer] ${msg}\n`);

const WORKLOADS = {
  b1: { name: 'b1_chain', defaultExecutions: 1000 },
  b2: { name: 'b2_fanout', defaultExecutions: 200 },
  b3: { name: 'b3_latency', defaultExecutions: 50 },
  b5: { name: 'b5_wide', defaultExecutions: 20 },
};
const CHAIN_LEN = 10;
const FAN_WIDTH = { b2: 50, b5: 1000 };
const B3_WARMUP = 2;
const NO_PROGRESS_S = 60;
const USAGE =
  'usage: node bench.mjs --workload b1|b2|b3|b5 [--executions N] [--concurrency C] [--prefix P] ' +
  '[--redis URL] [--timeout SECONDS]';

function usageError(msg) {
  process.stderr.write(`bench.mjs: ${msg}\n${USAGE}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  const opts = {
    redis: 'redis://127.0.0.1:6379',
    workload: null,
    executions: null,
    concurrency: 50,
    prefix: 'bmqbench',
    timeout: 600,
  };
  const positiveInt = (flag, v) => {
    if (!/^[0-9]+$/.test(v) || Number(v) < 1) usageError(`${flag} needs a positive integer, got '${v}'`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    let flag = argv[i];
    let value;
    if (flag === '-h' || flag === '--help') {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const eq = flag.indexOf('=');
    if (flag.startsWith('--') && eq > 0) {
      value = flag.slice(eq + 1);
      flag = flag.slice(0, eq);
    } else {
      value = argv[i + 1];
      i++;
    }
    if (!['--redis', '--workload', '--executions', '--concurrency', '--prefix', '--timeout'].includes(flag)) {
      usageError(`unknown argument '${flag}'`);
    }
    if (value === undefined || value === '') usageError(`${flag} needs a value`);
    switch (flag) {
      case '--redis':
        if (!/^rediss?:\/\//.test(value)) usageError(`--redis needs a redis:// URL, got '${value}'`);
        opts.redis = value;
        break;
      case '--workload': {
        const key = Object.keys(WORKLOADS).find((k) => k === value || WORKLOADS[k].name === value);
        if (!key) usageError(`unknown workload '${value}' (b1, b2, b3 or b5)`);
        opts.workload = key;
        break;
      }
      case '--executions':
        opts.executions = positiveInt(flag, value);
        break;
      case '--concurrency':
        opts.concurrency = positiveInt(flag, value);
        break;
      case '--prefix':
        if (!/^[A-Za-z0-9_.-]+$/.test(value)) usageError(`--prefix must match [A-Za-z0-9_.-]+, got '${value}'`);
        opts.prefix = value;
        break;
      case '--timeout':
        opts.timeout = positiveInt(flag, value);
        break;
    }
  }
  if (!opts.workload) usageError('--workload is required');
  if (opts.executions === null) opts.executions = WORKLOADS[opts.workload].defaultExecutions;
  return opts;
}

async function checkRedis(url) {
  const probe = new IORedis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  let lastError = null;
  probe.on('error', (err) => {
    lastError = err;
  });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    const cause = lastError || err;
    process.stderr.write(`bench.mjs: cannot reach Redis at ${url}: ${cause && cause.message ? cause.message : cause}\n`);
    probe.disconnect();
    process.exit(1);
  }
  probe.disconnect();
}

async function deleteLeftovers(redis, pattern) {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length) {
      await redis.unlink(...keys);
      n += keys.length;
    }
  } while (cursor !== '0');
  return n;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const rank = Math.max(1, Math.ceil(p * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1];
}

const round = (x, digits) => (x === null ? null : Number(x.toFixed(digits)));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  await checkRedis(opts.redis);

  const wl = opts.workload;
  const workloadName = WORKLOADS[wl].name;
  const queueName = workloadName;
  const N = opts.executions;
  const width = FAN_WIDTH[wl] ?? 0;
  const nodesPerExec = wl === 'b1' || wl === 'b3' ? CHAIN_LEN : width + 2;

  // One connection shared by the Queue, the FlowProducer and the Worker (the Worker duplicates it for its
  // blocking connection), as the BullMQ docs show.
  const connection = new IORedis(opts.redis, { maxRetriesPerRequest: null });
  connection.on('error', (err) => log(`redis error: ${err.message}`));
  const prefix = opts.prefix;
  const jobOpts = { removeOnComplete: true, removeOnFail: false };
  const queue = new Queue(queueName, { connection, prefix, defaultJobOptions: jobOpts });
  const flow = width ? new FlowProducer({ connection, prefix }) : null;
  await queue.waitUntilReady();
  await queue.obliterate({ force: true }); // a previous run that crashed may have left jobs behind
  await deleteLeftovers(connection, `${prefix}:${queueName}:*`);

  // Verification state, indexed by execution. Warm-up runs of b3 use executions N .. N+B3_WARMUP-1.
  const totalExecs = wl === 'b3' ? N + B3_WARMUP : N;
  const nodeDone = new Uint16Array(totalExecs * nodesPerExec); // completions per (execution, node)
  const execDone = new Uint8Array(totalExecs);
  let completedNodes = 0;
  let completedExecs = 0;
  let failedJobs = 0;
  let badJoins = 0;
  let lastProgress = performance.now();
  const waiters = new Map(); // b3: execution -> resolve

  const processor = async (job) => {
    const d = job.data;
    switch (job.name) {
      case 'node': // chain node: pass the data on to the next node
        if (d.n < CHAIN_LEN - 1) await queue.add('node', { e: d.e, n: d.n + 1, v: d.v });
        return d.v;
      case 'root': // fan-out: the join is the parent of `width` middle nodes
        await flow.add({
          name: 'join',
          queueName,
          data: { e: d.e },
          opts: jobOpts,
          children: Array.from({ length: width }, (_, i) => ({
            name: 'mid',
            queueName,
            data: { e: d.e, i, v: d.v },
            opts: jobOpts,
          })),
        });
        return d.v;
      case 'mid':
        return d.v;
      case 'join': {
        const values = await job.getChildrenValues();
        return Object.keys(values).length;
      }
      default:
        throw new Error(`unknown job name ${job.name}`);
    }
  };

  const markExecDone = (e) => {
    if (execDone[e]++ === 0 && ++completedExecs >= N && allDone) allDone();
    const w = waiters.get(e);
    if (w) {
      waiters.delete(e);
      w();
    }
  };

  const worker = new Worker(queueName, processor, { connection, prefix, concurrency: opts.concurrency });
  worker.on('completed', (job, result) => {
    const d = job.data;
    lastProgress = performance.now();
    completedNodes++;
    if (d.e === undefined || d.e < 0 || d.e >= totalExecs) return;
    let node;
    switch (job.name) {
      case 'node':
        node = d.n;
        break;
      case 'root':
        node = 0;
        break;
      case 'mid':
        node = 1 + d.i;
        break;
      case 'join':
        node = width + 1;
        if (result !== width) badJoins++;
        break;
      default:
        return;
    }
    nodeDone[d.e * nodesPerExec + node]++;
    if (node === nodesPerExec - 1) markExecDone(d.e);
  });
  worker.on('failed', (job, err) => {
    failedJobs++;
    log(`job ${job ? `${job.name} ${job.id}` : '?'} failed: ${err && err.message}`);
  });
  worker.on('error', (err) => log(`worker error: ${err.message}`));
  await worker.waitUntilReady();

  const deadline = performance.now() + opts.timeout * 1000;
  let timedOut = false;
  // Resolves as soon as the completion handler sees the last execution finish (no polling delay in the
  // measured wall time); a watchdog gives up after --timeout or NO_PROGRESS_S seconds without progress.
  let allDone = null;
  const waitForAll = () =>
    new Promise((resolve) => {
      if (completedExecs >= N) return resolve(true);
      const watchdog = setInterval(() => {
        const now = performance.now();
        if (now > deadline || now - lastProgress > NO_PROGRESS_S * 1000) {
          timedOut = true;
          allDone = null;
          clearInterval(watchdog);
          resolve(false);
        }
      }, 200);
      allDone = () => {
        allDone = null;
        clearInterval(watchdog);
        resolve(true);
      };
    });

  const firstName = wl === 'b1' || wl === 'b3' ? 'node' : 'root';
  const firstData = (e) => (firstName === 'node' ? { e, n: 0, v: e } : { e, v: e });
  let wallMs;
  let hops = [];

  log(`${workloadName}: ${N} executions x ${nodesPerExec} nodes, concurrency ${opts.concurrency}, prefix ${prefix}`);
  if (wl === 'b3') {
    const runOne = async (e) => {
      const done = new Promise((resolve) => waiters.set(e, resolve));
      const t0 = performance.now();
      await queue.add('node', firstData(e));
      let timer;
      const ok = await Promise.race([
        done.then(() => true),
        new Promise((resolve) => {
          timer = setTimeout(() => resolve(false), Math.min(NO_PROGRESS_S * 1000, Math.max(0, deadline - t0)));
        }),
      ]);
      clearTimeout(timer);
      if (!ok) timedOut = true;
      return ok ? performance.now() - t0 : null;
    };
    for (let w = 0; w < B3_WARMUP && !timedOut; w++) await runOne(N + w);
    const t0 = performance.now();
    for (let e = 0; e < N && !timedOut; e++) {
      const ms = await runOne(e);
      if (ms !== null) hops.push(ms / CHAIN_LEN);
    }
    wallMs = performance.now() - t0;
    hops.sort((a, b) => a - b);
  } else {
    const t0 = performance.now();
    const BULK = 500;
    for (let s = 0; s < N; s += BULK) {
      const batch = [];
      for (let e = s; e < Math.min(N, s + BULK); e++) batch.push({ name: firstName, data: firstData(e) });
      await queue.addBulk(batch);
    }
    await waitForAll();
    wallMs = performance.now() - t0;
  }
  if (timedOut) log('gave up waiting: not every execution completed');

  // Verify: every node of every counted execution completed exactly once; nothing failed.
  let exactlyOnce = true;
  for (let e = 0; e < N && exactlyOnce; e++) {
    for (let k = 0; k < nodesPerExec; k++) {
      if (nodeDone[e * nodesPerExec + k] !== 1) {
        exactlyOnce = false;
        log(`execution ${e} node ${k} completed ${nodeDone[e * nodesPerExec + k]} times`);
        break;
      }
    }
  }
  let countedExecs = 0;
  for (let e = 0; e < N; e++) if (execDone[e]) countedExecs++;
  let countedNodes = 0;
  for (let i = 0; i < N * nodesPerExec; i++) countedNodes += nodeDone[i];
  const allCompleted =
    !timedOut && exactlyOnce && countedExecs === N && failedJobs === 0 && badJoins === 0 &&
    (wl !== 'b3' || hops.length === N);
  log(
    `completed ${countedExecs}/${N} executions, ${countedNodes}/${N * nodesPerExec} nodes ` +
      `(${completedNodes} jobs in all), failed jobs ${failedJobs}, bad joins ${badJoins}`,
  );

  // Clean up: stop the worker, obliterate the queue, delete anything left under the prefix.
  await worker.close(timedOut);
  if (flow) await flow.close();
  await queue.obliterate({ force: true });
  await queue.close();
  const left = await deleteLeftovers(connection, `${prefix}:${queueName}:*`);
  if (left) log(`deleted ${left} leftover keys under ${prefix}:${queueName}:`);
  await connection.quit();

  const wallS = wallMs / 1000;
  const result = {
    workload: workloadName,
    backend: 'bullmq',
    workers: 1,
    executions: N,
    nodes: countedNodes,
    wall_s: round(wallS, 4),
    nodes_per_s: round(wallS > 0 ? countedNodes / wallS : 0, 1),
    hop_p50_ms: wl === 'b3' ? round(percentile(hops, 0.5), 3) : null,
    hop_p99_ms: wl === 'b3' ? round(percentile(hops, 0.99), 3) : null,
    all_completed: allCompleted,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`, () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`bench.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
