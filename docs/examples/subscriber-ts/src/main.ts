// An example subscriber to Switchyard's domain events, as a team outside the
// hub writes it in TypeScript: it reads a durable pull consumer on the
// BILLING stream, decodes each message by its subject (proto/subjects.json
// names the protobuf type of every subject), continues the publisher's
// trace from the traceparent header, does its "work" — one JSON line per
// message on stdout — acks after the work, naks with a delay when the work
// fails, and stops cleanly on SIGTERM or SIGINT.
//
// Configuration, from the environment:
//
//   NATS_URL            default nats://127.0.0.1:4222
//   NATS_USER           with NATS_PASSWORD or NATS_PASSWORD_FILE; or NATS_CREDS (a .creds file)
//   NATS_INBOX_PREFIX   default _INBOX_<NATS_USER>: the only inboxes the hub lets a user read
//   SUBSCRIBER_NAME     the durable consumer's name (required; letters, digits, - and _)
//   SUBSCRIBER_STREAM   default BILLING
//   SUBSCRIBER_FILTER   default billing.>
//   SUBSCRIBER_DELIVER  where the consumer starts if this creates it: all (default), new, or an RFC 3339 time
//   SUBJECTS_JSON       the subject→type mapping, default proto/subjects.json of this repository
//
// See docs/subscribing.md in the Switchyard repository.

import { readFileSync } from "node:fs";
import { connect, credsAuthenticator, type ConnectionOptions, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import {
  AckPolicy,
  DeliverPolicy,
  jetstream,
  jetstreamManager,
  JetStreamApiCodes,
  JetStreamApiError,
  type Consumer,
  type ConsumerConfig,
  type JsMsg,
} from "@nats-io/jetstream";
import { fromBinary, isMessage, type Message } from "@bufbuild/protobuf";
import { ROOT_CONTEXT, SpanKind, type Span, type TextMapGetter } from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import { BasicTracerProvider, type ReadableSpan } from "@opentelemetry/sdk-trace-base";

import { SubjectTypes } from "./subjects.js";
import { EventMetaSchema } from "./gen/switchyard/billing/v1/billing_pb.js";

/** The header naming the message's protobuf type: a cross-check, the subject decides. */
const headerType = "Switchyard-Type";

/**
 * Names the one consumer a replayed dead letter is for (the operator replays
 * to the original subject, so every subscriber of the subject sees it):
 * everyone else acks it and does nothing.
 */
const headerReplayFor = "Switchyard-Replay-For";

/** How long a message whose work failed waits before the server delivers it again. */
const retryDelayMs = 5_000;

type Config = {
  connection: ConnectionOptions;
  name: string;
  stream: string;
  filter: string;
  deliver: Pick<ConsumerConfig, "deliver_policy" | "opt_start_time">;
  subjectsJSON: string;
};

function loadConfig(env: NodeJS.ProcessEnv): Config {
  const user = env.NATS_USER ?? "";
  let pass = env.NATS_PASSWORD ?? "";
  if (!pass && env.NATS_PASSWORD_FILE) {
    pass = readFileSync(env.NATS_PASSWORD_FILE, "utf8").trim();
  }
  const name = env.SUBSCRIBER_NAME ?? "";
  if (!/^[A-Za-z0-9_-]+$/.test(name)) {
    throw new Error(`SUBSCRIBER_NAME ${JSON.stringify(name)}: want one NATS subject token (letters, digits, - and _)`);
  }
  const connection: ConnectionOptions = { servers: env.NATS_URL || "nats://127.0.0.1:4222", name };
  if (env.NATS_CREDS) {
    connection.authenticator = credsAuthenticator(readFileSync(env.NATS_CREDS));
  }
  if (user) {
    connection.user = user;
    connection.pass = pass;
  }
  const inboxPrefix = env.NATS_INBOX_PREFIX || (user ? `_INBOX_${user}` : "");
  if (inboxPrefix) {
    connection.inboxPrefix = inboxPrefix;
  }
  const d = env.SUBSCRIBER_DELIVER || "all";
  let deliver: Config["deliver"];
  if (d === "all") {
    deliver = { deliver_policy: DeliverPolicy.All };
  } else if (d === "new") {
    deliver = { deliver_policy: DeliverPolicy.New };
  } else if (/^\d{4}-\d\d-\d\dT/.test(d) && !Number.isNaN(Date.parse(d))) {
    deliver = { deliver_policy: DeliverPolicy.StartTime, opt_start_time: new Date(d).toISOString() };
  } else {
    throw new Error(`SUBSCRIBER_DELIVER ${JSON.stringify(d)}: want all, new or an RFC 3339 time`);
  }
  return {
    connection,
    name,
    stream: env.SUBSCRIBER_STREAM || "BILLING",
    filter: env.SUBSCRIBER_FILTER || "billing.>",
    deliver,
    subjectsJSON: env.SUBJECTS_JSON || new URL("../../../../proto/subjects.json", import.meta.url).pathname,
  };
}

async function main(): Promise<void> {
  const cfg = loadConfig(process.env);
  const types = SubjectTypes.load(cfg.subjectsJSON);
  const nc = await connect(cfg.connection);
  const consumer = await durable(nc, cfg);

  // A real service adds a span processor with an exporter (OTLP); without
  // one the spans are still made, with their own ids, and go nowhere.
  const tracer = new BasicTracerProvider().getTracer("subscriber-ts");
  const propagator = new W3CTraceContextPropagator();

  const messages = await consumer.consume({ max_messages: 100 });
  const stop = () => messages.stop();
  process.once("SIGTERM", stop);
  process.once("SIGINT", stop);
  console.error(`subscriber: consuming ${cfg.name} on ${cfg.stream}`);

  // One message at a time: the one in hand when the signal comes is
  // finished and acked; those pulled but not yet handled go back to the
  // server, which delivers them again after the ack wait.
  for await (const msg of messages) {
    // Continue the publisher's trace: the consumer span's parent is the
    // span that published the message.
    const parent = propagator.extract(ROOT_CONTEXT, msg.headers, headerGetter);
    const span = tracer.startSpan(
      `process ${msg.subject}`,
      { kind: SpanKind.CONSUMER, attributes: { "messaging.system": "nats", "messaging.destination.name": msg.subject } },
      parent,
    );
    try {
      const replayFor = msg.headers?.get(headerReplayFor) ?? "";
      if (replayFor && replayFor !== cfg.name) {
        msg.ack(); // another consumer's replay of a message we had
        continue;
      }
      await handle(msg, types, span);
    } finally {
      span.end();
    }
  }
  await nc.drain();
}

/**
 * Binds to the subscriber's durable pull consumer, and creates it when it
 * does not exist yet. A subscriber with only the permissions it needs may
 * not create it: the operator does, with the same settings (`switchyard
 * subscriber`), and it is found here. Where it starts is fixed when it is
 * created; after that, each start goes on where the last one stopped.
 */
async function durable(nc: NatsConnection, cfg: Config): Promise<Consumer> {
  const js = jetstream(nc);
  try {
    const consumer = await js.consumers.get(cfg.stream, cfg.name);
    const filter = (await consumer.info(true)).config.filter_subject ?? "";
    if (filter !== cfg.filter) {
      console.error(
        `subscriber: consumer ${cfg.name} reads "${filter}", not SUBSCRIBER_FILTER "${cfg.filter}": ` +
          "the operator changes it (switchyard subscriber)",
      );
    }
    return consumer;
  } catch (err) {
    if (!(err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)) {
      throw new Error(`consumer ${cfg.name} on ${cfg.stream}: ${err}`);
    }
  }
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false, timeout: 10_000 });
    await jsm.consumers.add(cfg.stream, {
      durable_name: cfg.name,
      filter_subject: cfg.filter,
      ack_policy: AckPolicy.Explicit,
      ack_wait: 30 * 1e9, // nanoseconds
      max_ack_pending: 1000,
      max_deliver: -1, // never given up on by the server: we decide
      ...cfg.deliver,
    });
  } catch (err) {
    throw new Error(
      `consumer ${cfg.name} on ${cfg.stream} does not exist, and creating it failed ` +
        `(a subscriber with least privilege may not: the operator creates it): ${err}`,
    );
  }
  return js.consumers.get(cfg.stream, cfg.name);
}

async function handle(msg: JsMsg, types: SubjectTypes, span: Span): Promise<void> {
  let event: Message;
  try {
    event = decode(msg, types);
  } catch (err) {
    // It will never decode: redelivering it is pointless. The reason goes
    // to the server's advisory; the stream keeps the message.
    console.error(`subscriber: ${err}`);
    span.recordException(err as Error);
    msg.term(String(err));
    return;
  }
  try {
    await work(msg.subject, event, span);
  } catch (err) {
    console.error(`subscriber: ${msg.subject}: ${err} (again in ${retryDelayMs} ms)`);
    span.recordException(err as Error);
    msg.nak(retryDelayMs);
    return;
  }
  // Ack after the work, and wait for the server to confirm it, so that a
  // stop right after this message does not have it delivered again.
  if (!(await msg.ackAck({ timeout: 5_000 }).catch(() => false))) {
    console.error(`subscriber: ack ${msg.subject}: not confirmed`);
  }
}

/** Decodes by subject and cross-checks the Switchyard-Type header when the publisher set one. */
function decode(msg: JsMsg, types: SubjectTypes): Message {
  const schema = types.schemaFor(msg.subject);
  const header = msg.headers?.get(headerType) ?? "";
  if (header && header !== schema.typeName) {
    throw new Error(`decode ${msg.subject}: header ${headerType} is ${header}, the subject says ${schema.typeName}`);
  }
  return fromBinary(schema, msg.data);
}

/** The subscriber's job: here, one JSON line per message. */
async function work(subject: string, event: Message, span: Span): Promise<void> {
  // Billing events carry their ids in meta; crm and support outcomes at the top.
  const fields = event as Message & { meta?: unknown; eventId?: string; canonicalCustomerId?: string };
  const ids = isMessage(fields.meta, EventMetaSchema) ? fields.meta : fields;
  const sc = span.spanContext();
  const line = {
    subject,
    type: event.$typeName,
    event_id: ids.eventId ?? "",
    canonical_customer_id: ids.canonicalCustomerId ?? "",
    trace_id: sc.traceId,
    span_id: sc.spanId,
    parent_span_id: (span as unknown as ReadableSpan).parentSpanContext?.spanId ?? "",
  };
  await new Promise<void>((resolve, reject) =>
    process.stdout.write(JSON.stringify(line) + "\n", (err) => (err ? reject(err) : resolve())),
  );
}

/** Reads NATS headers for the W3C propagator (the hub writes "traceparent" in lower case). */
const headerGetter: TextMapGetter<MsgHdrs | undefined> = {
  get: (h, key) => h?.get(key) || undefined,
  keys: (h) => h?.keys() ?? [],
};

main().catch((err) => {
  console.error(`subscriber: ${err instanceof Error ? err.message : err}`);
  process.exit(1);
});
