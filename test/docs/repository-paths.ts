/**
 * The repository paths that the docs and the source comments name, found without running
 * anything: what test/docs/paths.test.ts checks exist.
 *
 * A path is named in three forms, each held to what a reader can do with it:
 * - from the root (`lambda/core/smtp/reply-pairing.ts`, `docs/odmr.md`, `peers/servers/`): it
 *   exists, as a file, or as a folder when it ends with `/`;
 * - shortened, from some folder on the way (`core/smtp/dot-stuffing.ts`, `servers/exim.ts`): an
 *   existing path ends with it;
 * - a bare file name of source or docs (`message-text.ts`, `README.md`): a file of that name exists.
 * A path under a git-ignored folder (`bench/out/`, `node_modules/`) is made at run time and
 * counts as existing. Other projects' paths are named with their project (`nodemailer/lib/...`),
 * and absolute paths (`/etc/postfix/main.cf`) are the machine's, not the repository's.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export const ROOT = join(import.meta.dirname, '..', '..');

/** Every file git knows in the work tree (tracked, or new and not ignored). */
export function repositoryFiles(): string[] {
  return execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], {
    cwd: ROOT,
    encoding: 'utf8',
  })
    .split('\n')
    .filter((f) => f !== '');
}

/** A piece of prose: a doc's text, or one comment of a source file, with the line it starts on. */
export interface Prose {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

const SOURCE = /\.(ts|js|mjs|cjs)$/;

/**
 * The comments of a TypeScript or JavaScript file, read with TypeScript's scanner: strings,
 * template literals and regular expressions are tokens of their own, so a `//` or `/*` inside
 * one is not taken for a comment. (The scanner alone cannot tell a regular expression from a
 * division, nor the end of a template substitution from a block's: both are decided here from
 * the token before, as a parser would, at a tenth of the cost of parsing every file.)
 */
export function commentsOf(file: string, text: string): Prose[] {
  const K = ts.SyntaxKind;
  const scanner = ts.createScanner(
    ts.ScriptTarget.Latest,
    false,
    ts.LanguageVariant.Standard,
    text,
  );
  const out: Prose[] = [];
  /** One entry per open `{` or `${`: true for a template's substitution. */
  const braces: boolean[] = [];
  let previous: ts.SyntaxKind = K.Unknown;
  let line = 1;
  let counted = 0;
  for (let kind = scanner.scan(); kind !== K.EndOfFileToken; kind = scanner.scan()) {
    if (kind === K.SingleLineCommentTrivia || kind === K.MultiLineCommentTrivia) {
      const start = scanner.getTokenStart();
      line += countLines(text, counted, start);
      counted = start;
      out.push({ file, line, text: scanner.getTokenText() });
      continue;
    }
    if (kind === K.WhitespaceTrivia || kind === K.NewLineTrivia) continue;
    if (kind === K.TemplateHead || kind === K.OpenBraceToken) braces.push(kind === K.TemplateHead);
    else if (kind === K.CloseBraceToken && braces.pop()) {
      kind = scanner.reScanTemplateToken(false);
      if (kind === K.TemplateMiddle) braces.push(true);
    } else if ((kind === K.SlashToken || kind === K.SlashEqualsToken) && regexMayFollow(previous))
      kind = scanner.reScanSlashToken();
    previous = kind;
  }
  return out;
}

function countLines(text: string, from: number, to: number): number {
  let n = 0;
  for (let i = text.indexOf('\n', from); i !== -1 && i < to; i = text.indexOf('\n', i + 1)) n++;
  return n;
}

/** After these a `/` divides; after anything else (`(`, `=`, `return`...) it opens a regular expression. */
function regexMayFollow(previous: ts.SyntaxKind): boolean {
  const K = ts.SyntaxKind;
  const operand = new Set([
    K.Identifier,
    K.PrivateIdentifier,
    K.NumericLiteral,
    K.BigIntLiteral,
    K.StringLiteral,
    K.NoSubstitutionTemplateLiteral,
    K.TemplateTail,
    K.RegularExpressionLiteral,
    K.CloseParenToken,
    K.CloseBracketToken,
    K.CloseBraceToken,
    K.PlusPlusToken,
    K.MinusMinusToken,
    K.ThisKeyword,
    K.SuperKeyword,
    K.TrueKeyword,
    K.FalseKeyword,
    K.NullKeyword,
  ]);
  return !operand.has(previous);
}

/** `#` comments of a shell script and `//` comments of a JSON-with-comments file. */
function lineComments(file: string, text: string, marker: RegExp): Prose[] {
  return text.split('\n').flatMap((line, i) => {
    const m = marker.exec(line);
    return m ? [{ file, line: i + 1, text: line.slice(m.index) }] : [];
  });
}

/** Every doc (Markdown) whole, and every comment of every source file, scripts and configs included. */
export function proseOf(files: readonly string[]): Prose[] {
  return files.flatMap((file): Prose[] => {
    const read = () => readFileSync(join(ROOT, file), 'utf8');
    if (file.endsWith('.md')) return [{ file, line: 1, text: read() }];
    if (SOURCE.test(file)) return commentsOf(file, read());
    if (file.endsWith('.jsonc')) return lineComments(file, read(), /\/\/.*$/);
    if (file === '.ci/run' || file.endsWith('.sh')) return lineComments(file, read(), /(^|\s)#.*$/);
    return [];
  });
}

/** A path as named, and where. */
export interface NamedPath {
  readonly file: string;
  readonly line: number;
  readonly path: string;
}

const TOP = [
  'lambda',
  'cli',
  'lib',
  'bin',
  'peers',
  'test',
  'bench',
  'docs',
  'demo',
  'scripts',
  'events',
  '.ci',
];
/** What a shortened path ends with to count as a name of ours. */
const SHORTENED_FILE = /\.(ts|js|mjs|md)$/;
/** What a bare file name ends with: source and docs, not the bundles built from them (`index.mjs`). */
const BARE_FILE = /\.(ts|md)$/;
/**
 * A path-like word: folder names and a file name joined by `/`, or a bare file name with an
 * extension. Not preceded by what would make it part of a URL, an absolute or `./` path, or a
 * longer word.
 */
const WORD = /(?<![\w.@/:~$-])((?:\.ci|[A-Za-z_][\w.@-]*)(?:\/[\w.@-]+)*\/?)/g;

export function namedPaths(prose: readonly Prose[]): NamedPath[] {
  const out: NamedPath[] = [];
  for (const p of prose) {
    for (const m of p.text.matchAll(WORD)) {
      let path = m[1]!;
      // A sentence's full stop or a glob's star is not part of the name.
      if (p.text[m.index + m[0].length] === '*') continue;
      path = path.replace(/\.+$/, '');
      const top = path.split('/')[0]!;
      const rooted = path.includes('/') && TOP.includes(top);
      const shortened = path.includes('/') && !rooted && SHORTENED_FILE.test(path);
      const bare = !path.includes('/') && BARE_FILE.test(path);
      if (!rooted && !shortened && !bare) continue;
      const line = p.line + (p.text.slice(0, m.index).match(/\n/g)?.length ?? 0);
      out.push({ file: p.file, line, path });
    }
  }
  return out;
}

/** The named paths that name nothing in the repository (`files`: repositoryFiles()). */
export function missingPaths(named: readonly NamedPath[], files: readonly string[]): NamedPath[] {
  const fileSet = new Set(files);
  const folders = new Set(
    files.flatMap((f) => {
      const parts = f.split('/').slice(0, -1);
      return parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    }),
  );
  const basenames = new Set(files.map((f) => f.split('/').at(-1)!));
  const exists = (path: string): boolean => {
    const bare = path.replace(/\/$/, '');
    if (path.includes('/') && TOP.includes(path.split('/')[0]!)) {
      if (folders.has(bare) || (!path.endsWith('/') && fileSet.has(bare))) return true;
      return madeAtRunTime(bare);
    }
    if (path.includes('/')) return files.some((f) => f === bare || f.endsWith(`/${bare}`));
    return basenames.has(path);
  };
  return named.filter((n) => !exists(n.path));
}

/** Under a folder that .gitignore names (`bench/out/`): made by a run, not kept in git. */
function madeAtRunTime(path: string): boolean {
  try {
    // A name inside it: a pattern with a trailing slash matches folders only.
    execFileSync('git', ['check-ignore', '-q', '--no-index', `${path}/x`], { cwd: ROOT });
    return true;
  } catch {
    return false;
  }
}
