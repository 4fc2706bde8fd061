// Validates proto/asyncapi.yaml (or the file named as the first argument)
// with @asyncapi/parser: prints every diagnostic and exits 1 when any is
// an error, or when the document cannot be parsed. `make contract` runs it.
import { Parser, fromFile, DiagnosticSeverity } from '@asyncapi/parser';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const file = process.argv[2] ?? path.join(here, '..', '..', 'proto', 'asyncapi.yaml');

const names = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

const { document, diagnostics } = await fromFile(new Parser(), file).parse();
let errors = 0;
for (const d of diagnostics) {
  if (d.severity === DiagnosticSeverity.Error) errors++;
  const where = d.path?.length ? ` at ${d.path.join('.')}` : '';
  const line = d.range ? `:${d.range.start.line + 1}` : '';
  console.log(`${path.relative(process.cwd(), file)}${line}: ${names[d.severity] ?? d.severity} ${d.code}: ${d.message}${where}`);
}
if (errors > 0 || !document) {
  console.error(`contract: ${file} is not a valid AsyncAPI document (${errors} error(s))`);
  process.exit(1);
}
const channels = document.channels().length;
const messages = document.components().messages().length;
console.log(`contract: ${path.relative(process.cwd(), file)} is valid AsyncAPI ${document.version()}: ${channels} channels, ${messages} messages, ${diagnostics.length} diagnostic(s), none an error`);
