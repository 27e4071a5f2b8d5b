/**
 * The layout's rules, read off the source files' imports (type-only imports included: a circle
 * "only for types" is still a circle a reader has to untangle). See README "Layout".
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** Everything that ships or runs for a user; test/ and bench/ may import what they test. */
const PRODUCTION = ['lambda', 'cli', 'lib', 'bin', 'peers', 'demo', 'scripts'];

interface SourceFile {
  readonly path: string; // relative to the root, with extension
  readonly relative: string[]; // resolved relative imports (repo paths)
  readonly packages: string[]; // bare specifiers
}

function walk(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'node_modules' || name.startsWith('.')) return [];
    if (statSync(join(ROOT, path)).isDirectory()) return walk(path);
    return /\.(ts|js|mjs)$/.test(name) && !name.endsWith('.d.ts') ? [path] : [];
  });
}

const SPECIFIER =
  /(?:^|[\s;])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[\s;(])import\s*\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

function resolveImport(from: string, spec: string): string {
  const base = resolve(ROOT, dirname(from), spec);
  for (const candidate of [
    base,
    `${base}.ts`,
    `${base.replace(/\.js$/, '')}.ts`,
    join(base, 'index.ts'),
  ]) {
    try {
      if (statSync(candidate).isFile()) return relative(ROOT, candidate);
    } catch {
      // try the next form
    }
  }
  return relative(ROOT, base);
}

function read(path: string): SourceFile {
  // Comments mention paths ("see lambda/core/..."); they are not imports.
  const text = readFileSync(join(ROOT, path), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/^\s*\/\/.*$/gm, '');
  const relativeImports: string[] = [];
  const packages: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (spec.startsWith('.')) relativeImports.push(resolveImport(path, spec));
    else packages.push(spec);
  }
  return { path, relative: relativeImports, packages };
}

const files = [...PRODUCTION, 'test', 'bench'].flatMap((dir) => walk(dir)).map(read);
const production = files.filter((f) => PRODUCTION.some((dir) => f.path.startsWith(`${dir}/`)));
const under = (prefix: string) => (path: string) => path.startsWith(prefix);

function offenders(
  from: (path: string) => boolean,
  forbidden: (f: SourceFile) => string[],
): string[] {
  return files
    .filter((f) => from(f.path))
    .flatMap((f) => forbidden(f).map((target) => `${f.path} -> ${target}`));
}

describe('the layout', () => {
  it('reads the tree (a guard against a test that finds nothing to check)', () => {
    expect(files.filter((f) => f.path.startsWith('lambda/core/')).length).toBeGreaterThan(20);
    expect(files.find((f) => f.path === 'lambda/core/signal/session.ts')?.relative).toContain(
      'lambda/core/smtp/client-handshake.ts',
    );
  });

  it('lambda/core imports no AWS SDK, no file system, no adapters, no CLI and no CDK', () => {
    const bad = offenders(under('lambda/core/'), (f) => [
      ...f.packages.filter((p) =>
        /^@aws-sdk\/|^@aws-lambda-powertools\/|^aws-cdk-lib|^(node:)?fs(\/|$)/.test(p),
      ),
      ...f.relative.filter(
        (p) => /^(lambda\/adapters|cli|lib)\//.test(p) || !p.startsWith('lambda/core/'),
      ),
    ]);
    expect(bad).toEqual([]);
  });

  it('the shared wire (core/smtp) knows neither side; the signal client and the ODMR server do not import each other', () => {
    expect(
      offenders(under('lambda/core/smtp/'), (f) =>
        f.relative.filter((p) => /^lambda\/core\/(signal|odmr)\//.test(p)),
      ),
    ).toEqual([]);
    expect(
      offenders(under('lambda/core/signal/'), (f) => f.relative.filter(under('lambda/core/odmr/'))),
    ).toEqual([]);
    expect(
      offenders(under('lambda/core/odmr/'), (f) => f.relative.filter(under('lambda/core/signal/'))),
    ).toEqual([]);
  });

  it('nothing under lambda/ imports the CLI or the CDK code', () => {
    expect(
      offenders(under('lambda/'), (f) => f.relative.filter((p) => /^(cli|lib|bin)\//.test(p))),
    ).toEqual([]);
  });

  it('no production file imports test code', () => {
    const bad = production.flatMap((f) =>
      f.relative.filter(under('test/')).map((t) => `${f.path} -> ${t}`),
    );
    expect(bad).toEqual([]);
  });

  it('benchmarks import nothing from test/: the harnesses they share live in peers/', () => {
    const bench = files.filter((f) => f.path.startsWith('bench/'));
    expect(bench.length).toBeGreaterThan(0);
    const bad = bench.flatMap((f) =>
      f.relative.filter(under('test/')).map((t) => `${f.path} -> ${t}`),
    );
    expect(bad).toEqual([]);
  });

  it('has no import circles', () => {
    const graph = new Map(production.map((f) => [f.path, f.relative.filter((p) => p !== f.path)]));
    const circles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const visit = (path: string, trail: string[]) => {
      if (state.get(path) === 'done') return;
      if (state.get(path) === 'open') {
        circles.push([...trail.slice(trail.indexOf(path)), path].join(' -> '));
        return;
      }
      state.set(path, 'open');
      for (const next of graph.get(path) ?? []) if (graph.has(next)) visit(next, [...trail, path]);
      state.set(path, 'done');
    };
    for (const path of graph.keys()) visit(path, []);
    expect(circles).toEqual([]);
  });
});
