// Minimal webhook endpoint around @supabase/stripe-sync-engine, as a user runs
// it: one Node process, POST /webhook → StripeSync.processWebhook (signature
// check, then an upsert into PostgreSQL). Kept local: no Stripe API calls.
//
// Environment: DATABASE_URL (required), STRIPE_WEBHOOK_SECRET (required),
// PORT (default 18090), STRIPESYNC_POOL_MAX (default: the library's 10).
import http from 'node:http';
import { createRequire } from 'node:module';

// The CommonJS build: the ESM build's runMigrations resolves its migrations
// folder from __dirname, which ESM lacks, and it logs instead of throwing.
const require = createRequire(import.meta.url);
const { StripeSync, runMigrations } = require('@supabase/stripe-sync-engine');

const databaseUrl = mustEnv('DATABASE_URL');
const webhookSecret = mustEnv('STRIPE_WEBHOOK_SECRET');
const port = Number(process.env.PORT || 18090);
const schema = 'stripe';

// runMigrations reports failures only through a logger, so give it one.
let migrationFailed = false;
await runMigrations({
  databaseUrl,
  schema,
  logger: {
    info() {},
    warn: console.warn,
    error(err, msg) {
      migrationFailed = true;
      console.error(msg, err);
    },
  },
});
if (migrationFailed) process.exit(1);

const poolConfig = { connectionString: databaseUrl };
if (process.env.STRIPESYNC_POOL_MAX) poolConfig.max = Number(process.env.STRIPESYNC_POOL_MAX);

const sync = new StripeSync({
  schema,
  poolConfig,
  stripeSecretKey: 'sk_test_bench_unused', // never used: nothing below calls the Stripe API
  stripeWebhookSecret: webhookSecret,
  autoExpandLists: false,
  backfillRelatedEntities: false,
  revalidateObjectsViaStripeApi: [],
});

const { rows } = await sync.postgresClient.query(`select to_regclass('${schema}.customers') is not null as ok`);
if (!rows[0].ok) {
  console.error(`migrations did not create ${schema}.customers`);
  process.exit(1);
}

let errors = 0;
function logError(err) {
  if (++errors <= 5) console.error(`error ${errors}:`, err?.message ?? err);
}

const server = http.createServer(async (req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, 'ok');
  if (req.method !== 'POST' || req.url !== '/webhook') return reply(res, 404, 'not found');
  try {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    await sync.processWebhook(Buffer.concat(chunks), req.headers['stripe-signature']);
    reply(res, 200, 'ok');
  } catch (err) {
    logError(err);
    if (err?.type === 'StripeSignatureVerificationError') reply(res, 400, 'bad signature');
    else reply(res, 500, 'error');
  }
});

function reply(res, status, body) {
  res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
}

function mustEnv(name) {
  const v = process.env[name];
  if (!v) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return v;
}

async function shutdown() {
  server.close();
  await sync.close();
  if (errors) console.error(`${errors} requests failed`);
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

server.listen(port, '127.0.0.1', () => console.log(`stripe-sync-engine server on 127.0.0.1:${port}`));
