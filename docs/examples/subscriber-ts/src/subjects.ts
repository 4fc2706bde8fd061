// The subject→type mapping of the hub's contracts, read from
// proto/subjects.json, with the protobuf schemas generated in src/gen.

import { readFileSync } from "node:fs";
import { createRegistry, type DescMessage } from "@bufbuild/protobuf";

import { file_switchyard_billing_v1_billing } from "./gen/switchyard/billing/v1/billing_pb.js";
import { file_switchyard_crm_v1_crm } from "./gen/switchyard/crm/v1/crm_pb.js";
import { file_switchyard_dlq_v1_dlq } from "./gen/switchyard/dlq/v1/dlq_pb.js";
import { file_switchyard_support_v1_support } from "./gen/switchyard/support/v1/support_pb.js";

/** Every message type of the contracts, by its full protobuf name. */
const registry = createRegistry(
  file_switchyard_billing_v1_billing,
  file_switchyard_crm_v1_crm,
  file_switchyard_support_v1_support,
  file_switchyard_dlq_v1_dlq,
);

type Binding = { subject: string; stream: string; type: string; file: string };

/**
 * SubjectTypes answers which protobuf message a subject carries. Subjects
 * are exact, but for dead letters (`dlq.*`: one type on every
 * `dlq.<consumer>`).
 */
export class SubjectTypes {
  private constructor(private readonly bindings: Binding[]) {}

  static load(path: string): SubjectTypes {
    let doc: { subjects?: Binding[] };
    try {
      doc = JSON.parse(readFileSync(path, "utf8"));
    } catch (err) {
      throw new Error(`subject→type mapping ${path}: ${err instanceof Error ? err.message : err}`);
    }
    if (!Array.isArray(doc.subjects) || doc.subjects.length === 0) {
      throw new Error(`subject→type mapping ${path}: no "subjects"`);
    }
    for (const b of doc.subjects) {
      if (!registry.getMessage(b.type)) {
        throw new Error(`subject→type mapping ${path}: ${b.subject} carries ${b.type}, which src/gen lacks: run npm run generate`);
      }
    }
    return new SubjectTypes(doc.subjects);
  }

  /** The schema of the message on subject; throws for a subject of no contract. */
  schemaFor(subject: string): DescMessage {
    const b = this.bindings.find((b) => b.subject === subject) ?? this.bindings.find((b) => matches(b.subject, subject));
    if (!b) {
      throw new Error(`decode ${subject}: no message type for this subject`);
    }
    return registry.getMessage(b.type)!;
  }
}

/** matches reports whether a NATS subject pattern (`*` one token, `>` the rest) matches subject. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split(".");
  const s = subject.split(".");
  for (let i = 0; i < p.length; i++) {
    if (p[i] === ">") return s.length > i;
    if (i >= s.length || (p[i] !== "*" && p[i] !== s[i])) return false;
  }
  return p.length === s.length;
}
