'use strict';
// Start and stop a real `palisade serve` for the Node suite (same contract as ../harness.py).

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..');
const ACCESS_KEY_ID = 'compatAccessKeyId0001';
const ACCESS_KEY_SECRET = 'compatAccessKeySecret0001';
const ACCOUNT_ID = '1234567890123456';
const ACCOUNT_NAME = 'test@aliyun.com';
const REGION = 'cn-hangzhou';
const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'ALL_PROXY', 'all_proxy',
  'NO_PROXY', 'no_proxy'];

function palisadeBin() {
  let bin = process.env.PALISADE_BIN || path.join(REPO_ROOT, 'target', 'release', 'palisade');
  if (!path.isAbsolute(bin)) bin = path.join(REPO_ROOT, bin);
  try {
    fs.accessSync(bin, fs.constants.X_OK);
  } catch (e) {
    throw new Error(`palisade binary not found at ${bin}: build it with ` +
      '`cargo build --release -p palisade` or point $PALISADE_BIN at it');
  }
  return bin;
}

// With $PALISADE_TEST_PG_URL (an admin URL), a new empty PostgreSQL database for one
// server; otherwise none and the server uses SQLite in its data directory.
function freshDatabaseArgs() {
  const admin = process.env.PALISADE_TEST_PG_URL;
  if (!admin) return [];
  const name = 'compat_node_' + require('node:crypto').randomUUID().replace(/-/g, '');
  require('node:child_process').execFileSync('psql', [admin, '-q', '-c', `CREATE DATABASE ${name}`],
    { stdio: ['ignore', 'ignore', 'inherit'] });
  return ['--database-url', admin.slice(0, admin.lastIndexOf('/')) + '/' + name];
}

// Resolves to {url, port, stop(), stderr()} once the server printed its listening line.
function startServer(extraArgs = []) {
  const bin = palisadeBin();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-compat-node-'));
  // Only the options given here: drop proxies and any PALISADE_* setting of the caller
  // (serve reads PALISADE_RULE_QUOTA, PALISADE_DUPLICATE_RULE, ... from the environment).
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!PROXY_VARS.includes(k) && !k.startsWith('PALISADE_')) env[k] = v;
  }
  env.PALISADE_ACCESS_KEY_ID = ACCESS_KEY_ID;
  env.PALISADE_ACCESS_KEY_SECRET = ACCESS_KEY_SECRET;
  const args = ['serve', '--listen', '127.0.0.1:0', '--data-dir', path.join(dataDir, 'data'),
    ...freshDatabaseArgs(), ...extraArgs];
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk.toString('utf8'); });
  const stop = () => new Promise((resolve) => {
    const done = () => {
      if (process.env.PALISADE_COMPAT_KEEP_DATA !== '1') fs.rmSync(dataDir, { recursive: true, force: true });
      resolve();
    };
    if (child.exitCode !== null || child.signalCode !== null) return done();
    child.once('exit', done);
    child.kill('SIGTERM');
  });
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    let seen = '';
    let ready = false;
    lines.on('line', (line) => {
      seen += line + '\n';
      const m = /palisade listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
      if (m && !ready) {
        ready = true;
        const port = Number(m[1]);
        resolve({ port, url: `http://127.0.0.1:${port}`, stop, stderr: () => stderr, child });
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) {
        reject(new Error(`palisade serve exited (${code ?? signal}) before listening: ${bin} ${args.join(' ')}\n` +
          `stdout:\n${seen}\nstderr:\n${stderr}`));
      }
    });
    child.once('error', (err) => { if (!ready) reject(err); });
  });
}

module.exports = {
  startServer, palisadeBin, ACCESS_KEY_ID, ACCESS_KEY_SECRET, ACCOUNT_ID, ACCOUNT_NAME, REGION,
};
