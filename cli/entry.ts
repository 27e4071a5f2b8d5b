/** Process entry for the CLI: `npx dequeue` (bin/dequeue.js) and `npx tsx cli/entry.ts`. */
import { availableParallelism } from 'node:os';
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

// `deliver` makes eight file calls a message, each a trip to libuv's thread pool. With more pool
// threads than cores (libuv starts four) the trips cost more in wake-ups and the threads take
// turns with the main thread: on 2 cores, 1,000 x 50 KB took about a tenth less CPU and time
// with two (bench/README.md, History). Set before the first file call starts the pool; an
// operator's own UV_THREADPOOL_SIZE (a slow network disk may want more) is kept.
if (process.argv[2] === 'deliver')
  process.env.UV_THREADPOOL_SIZE ??= String(Math.min(4, availableParallelism()));

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
