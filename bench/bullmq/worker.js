#!/usr/bin/env node
// bench/bullmq/worker.js QUEUE: one BullMQ Worker (concurrency
// BULLMQ_CONCURRENCY, default 50) for QUEUE, returning each job's number;
// started by latency.js as its own process (the peer of one
// mutirao-worker). Writes "ready" on stdout once it waits for jobs, and
// closes on SIGTERM.
'use strict';
const { Worker } = require('bullmq');
const c = require('./common');

const name = process.argv[2];
const concurrency = Number(process.env.BULLMQ_CONCURRENCY || 50);
const conn = c.connection();
const worker = new Worker(name, async (job) => job.data.i, { connection: conn, concurrency });
worker.on('failed', (job, err) => console.error('failed', job && job.id, err));
worker.waitUntilReady().then(() => console.log('ready'));
process.on('SIGTERM', async () => {
  setTimeout(() => process.exit(1), 5000).unref();
  await worker.close();
  conn.disconnect();
  process.exit(0);
});
// the parent (latency.js) gone: stop too
process.on('disconnect', () => process.exit(1));
setInterval(() => process.ppid === 1 && process.exit(1), 1000).unref();
