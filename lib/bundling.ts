/**
 * How the Lambda function is bundled: one source of truth for the stack (NodejsFunction) and for
 * anything that must produce the very same bundle without CDK (the cold-start benchmark calls
 * esbuild's `build` with {@link lambdaEsbuildOptions}).
 *
 * Kept free of aws-cdk-lib imports so that a benchmark can load it cheaply; the construct maps it
 * onto NodejsFunction's `bundling` prop (`release-signaller.ts`).
 */

/** Node.js major version of the Lambda runtime; the bundle targets exactly this version. */
export const LAMBDA_NODE_MAJOR = 24;

/**
 * A CommonJS package bundled into ESM output keeps its `require('node:…')` calls for Node
 * built-ins, and esbuild's ESM output only has a shim that throws "Dynamic require is not
 * supported" unless a real `require` is in scope. Today's dependencies resolve to ESM builds
 * (`mainFields` below), but one CommonJS-only transitive dependency would break the function at
 * cold start, not at build time: one import is a cheap guard. The import is renamed so that it
 * cannot collide with a name in the bundled code.
 */
export const ESM_REQUIRE_BANNER =
  "import{createRequire as __dequeueCreateRequire}from'node:module';" +
  'const require=__dequeueCreateRequire(import.meta.url);';

/**
 * The options that decide what the bundle contains, in plain data.
 *
 * - ESM: top-level await is available, and it is the module format the code is written in.
 * - minified, with an external source map without sources content: smaller files load faster at
 *   cold start (Node reads the map at load time when `--enable-source-maps` is on), while stack
 *   traces still name the TypeScript lines.
 * - `mainFields: ['module', 'main']`: prefer a package's ESM build, which tree-shakes better.
 * - the AWS SDK is bundled, not taken from the runtime: the versions tested are the versions that
 *   run, `@aws-sdk/lib-storage` is not guaranteed to be in the runtime's copy, and one bundled
 *   module loads 3-4x faster than the SDK's many files (docs/lambda.md, "Cold start").
 * - except the credential providers Lambda never reaches: see {@link UNREACHED_IN_LAMBDA}.
 */
/**
 * Credential providers that `@aws-sdk/credential-provider-node` loads only by dynamic `import()`,
 * after the environment's credentials. Lambda always sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY
 * and AWS_SESSION_TOKEN, so the chain stops at `fromEnv` and these are never imported; leaving
 * them (and the STS/SSO clients they pull in) out of the bundle saves ~130 KiB and 12-15 ms of
 * cold start (bench/cold-start.ts). Off Lambda, without environment credentials, the bundle would
 * fail to find them: it is built for Lambda only.
 */
export const UNREACHED_IN_LAMBDA = [
  '@aws-sdk/credential-provider-sso',
  '@aws-sdk/credential-provider-ini',
  '@aws-sdk/credential-provider-process',
  '@aws-sdk/credential-provider-web-identity',
  '@aws-sdk/credential-provider-http',
  '@smithy/credential-provider-imds',
] as const;

export const lambdaBundle = {
  target: `node${LAMBDA_NODE_MAJOR}`,
  platform: 'node',
  format: 'esm',
  minify: true,
  sourcemap: true,
  sourcesContent: false,
  mainFields: ['module', 'main'],
  banner: ESM_REQUIRE_BANNER,
  /** Left out of the bundle: only what Lambda never loads. */
  external: [...UNREACHED_IN_LAMBDA] as string[],
} as const;

/**
 * The same bundle as esbuild `BuildOptions` (structurally; esbuild's types are not imported here).
 * Give it `entryPoints` and `outfile` (use an `.mjs` name, as NodejsFunction does) and call
 * `esbuild.build({...lambdaEsbuildOptions, entryPoints: ['lambda/handler.ts'], outfile})`.
 */
export const lambdaEsbuildOptions = {
  bundle: true,
  target: lambdaBundle.target,
  platform: lambdaBundle.platform,
  format: lambdaBundle.format,
  minify: lambdaBundle.minify,
  sourcemap: lambdaBundle.sourcemap,
  sourcesContent: lambdaBundle.sourcesContent,
  mainFields: [...lambdaBundle.mainFields],
  banner: { js: lambdaBundle.banner },
  external: [...lambdaBundle.external],
};

/**
 * The S3 mail store is built as a second file beside the handler's bundle and imported only when
 * mail arrives after ATRN (lambda/deployed-adapters.ts, MAIL_STORE_MODULE): compiling its S3 client at
 * every cold start would cost ~17 ms for cycles that never store mail (bench/cold-start.ts).
 */
export const MAIL_STORE_ENTRY = 'lambda/adapters/s3-mail-store.ts';
export const MAIL_STORE_FILE = 's3-mail-store.mjs';
/**
 * The SQS work queue likewise (lambda/deployed-adapters.ts, WORK_QUEUE_MODULE): only a cycle that fans out
 * sends to it (docs/fan-out.md); workers and small cycles never load its SQS client.
 */
export const WORK_QUEUE_ENTRY = 'lambda/adapters/sqs-work-queue.ts';
export const WORK_QUEUE_FILE = 'sqs-work-queue.mjs';

/** The files built beside the handler's bundle, each loaded on first use. */
export const SIDE_MODULES = [
  { entry: MAIL_STORE_ENTRY, file: MAIL_STORE_FILE },
  { entry: WORK_QUEUE_ENTRY, file: WORK_QUEUE_FILE },
] as const;

const shellQuote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;

/** The esbuild command that builds one side module with the same options as the handler's bundle. */
export function sideModuleBuildCommand(
  esbuild: string,
  projectRoot: string,
  outputDir: string,
  module: { entry: string; file: string },
): string {
  const flags = [
    '--bundle',
    `--target=${lambdaBundle.target}`,
    `--platform=${lambdaBundle.platform}`,
    `--format=${lambdaBundle.format}`,
    ...(lambdaBundle.minify ? ['--minify'] : []),
    ...(lambdaBundle.sourcemap ? ['--sourcemap'] : []),
    `--sources-content=${String(lambdaBundle.sourcesContent)}`,
    `--main-fields=${lambdaBundle.mainFields.join(',')}`,
    `--banner:js=${lambdaBundle.banner}`,
    ...lambdaBundle.external.map((e) => `--external:${e}`),
    '--log-level=warning',
    `--outfile=${outputDir}/${module.file}`,
  ];
  return [esbuild, `${projectRoot}/${module.entry}`, ...flags].map(shellQuote).join(' ');
}

/** The esbuild command that builds MAIL_STORE_FILE with the same options as the handler's bundle. */
export function mailStoreBuildCommand(
  esbuild: string,
  projectRoot: string,
  outputDir: string,
): string {
  return sideModuleBuildCommand(esbuild, projectRoot, outputDir, {
    entry: MAIL_STORE_ENTRY,
    file: MAIL_STORE_FILE,
  });
}

/** Every side module's build command, for NodejsFunction's afterBundling hook. */
export function sideModuleBuildCommands(
  esbuild: string,
  projectRoot: string,
  outputDir: string,
): string[] {
  return SIDE_MODULES.map((m) => sideModuleBuildCommand(esbuild, projectRoot, outputDir, m));
}
