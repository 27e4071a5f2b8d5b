/**
 * Every repository path that a doc or a source comment names exists, so that a move or a rename
 * cannot leave a reader looking for a file that is gone (test/docs/repository-paths.ts says which
 * words count as paths); and nothing cites a document the repository does not have.
 */
import { describe, expect, it } from 'vitest';
import {
  commentsOf,
  missingPaths,
  namedPaths,
  type Prose,
  proseOf,
  repositoryFiles,
} from './repository-paths';

const files = repositoryFiles();
const prose = proseOf(files);
const where = (p: { file: string; line: number }) => `${p.file}:${p.line}`;

describe('the paths the docs and the comments name', () => {
  it('exist in the repository', () => {
    const missing = missingPaths(namedPaths(prose), files).map((m) => `${where(m)}: ${m.path}`);
    expect(missing).toEqual([]);
  });

  it('no doc or comment cites a document that is not in the repository (SPEC, ../shared/)', () => {
    // A citation (the name followed by a colon, a quoted section, or the .md of the file), not a
    // placeholder in a usage line (`--child SPEC`).
    const cited = /\bSPEC(?:\.md\b|(?=:|\s+"))|\.\.\/shared\//g;
    const outside = prose.flatMap((p) =>
      [...p.text.matchAll(cited)].map(
        (m) =>
          `${p.file}:${p.line + (p.text.slice(0, m.index).match(/\n/g)?.length ?? 0)}: ${m[0]}`,
      ),
    );
    expect(outside).toEqual([]);
  });
});

describe('what counts as a named path', () => {
  const known = [
    'lambda/core/smtp/dot-stuffing.ts',
    'lambda/core/odmr/envelope-record.ts',
    'peers/servers/exim.ts',
    'docs/odmr.md',
    'README.md',
  ];
  const named = (text: string, file = 'docs/x.md'): string[] =>
    namedPaths([{ file, line: 1, text }]).map((n) => n.path);
  const missing = (text: string): string[] =>
    missingPaths(namedPaths([{ file: 'docs/x.md', line: 1, text }]), known).map((n) => n.path);

  it('a path from the root, shortened, or a bare file name; not a URL, an absolute path or a bundle', () => {
    expect(
      named(
        'See lambda/core/smtp/dot-stuffing.ts, servers/exim.ts and [odmr](docs/odmr.md#envelope); README.md.',
      ),
    ).toEqual(['lambda/core/smtp/dot-stuffing.ts', 'servers/exim.ts', 'docs/odmr.md', 'README.md']);
    expect(
      named(
        'https://github.com/x/lambda/y.ts, /etc/postfix/main.cf, ./local.ts, index.mjs, test/**',
      ),
    ).toEqual([]);
  });

  it('a moved file, a shortened path nothing ends with, an unknown bare name: each missing', () => {
    expect(missing('the envelope (lambda/core/envelope-record.ts)')).toEqual([
      'lambda/core/envelope-record.ts',
    ]);
    expect(missing('core/dot-stuffing.ts and odmr/envelope-record.ts')).toEqual([
      'core/dot-stuffing.ts',
    ]);
    expect(missing('SPEC.md and README.md')).toEqual(['SPEC.md']);
    expect(missing('peers/servers/ and peers/clients/')).toEqual(['peers/clients/']);
  });

  it('comments are read, strings and regular expressions are not', () => {
    const source = [
      "const a = '// lambda/gone-in-a-string.ts';",
      'const b = /\\/\\/ lambda\\/gone-in-a-regex.ts/;',
      'const c = `${a} // lambda/gone-in-a-template.ts ${b}`;',
      '// lambda/core/odmr/envelope-record.ts, in a comment',
      '/* and lambda/gone-in-a-block-comment.ts */',
    ].join('\n');
    const comments: Prose[] = commentsOf('x.ts', source);
    expect(comments.map((c) => [c.line, c.text])).toEqual([
      [4, '// lambda/core/odmr/envelope-record.ts, in a comment'],
      [5, '/* and lambda/gone-in-a-block-comment.ts */'],
    ]);
  });
});
