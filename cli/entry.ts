/** Process entry for the CLI: `npx dequeue` (bin/dequeue.js) and `npx tsx cli/entry.ts`. */
import { main } from './main';
import { nodeWarning, onFirstAwsClient } from './version';

// On an unsupported Node.js the AWS SDK prints an eight-line warning when a command makes its
// first client; one line of ours says the same (the SDK reads this variable at that moment).
const warning = nodeWarning();
if (warning) {
  onFirstAwsClient(() => {
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    process.stderr.write(`dequeue: ${warning}\n`);
  });
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (e: unknown) => {
    process.stderr.write(
      `dequeue: unexpected error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exitCode = 1;
  },
);
