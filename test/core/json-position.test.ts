/** The JSON syntax locator agrees with JSON.parse on what is valid, and never quotes the text. */
import { describe, expect, it } from 'vitest';
import { jsonSyntaxProblem } from '../../lambda/core/json-position';

const sample = JSON.stringify(
  {
    settings: { everyNthCycle: 0, helloName: 'mx.customer.example', mail: { maxRecipients: 100 } },
    targets: [
      {
        name: 'isp',
        host: 'relay.isp.example',
        port: 25,
        auth: { secretId: 'dequeue/isp' },
        command: ['ETRN a.example', 'ETRN #q'],
        tlsVerify: true,
        x: null,
        n: -1.5e3,
        s: 'tab\\t "q" \\u00e9',
      },
    ],
  },
  null,
  2,
);

describe('jsonSyntaxProblem', () => {
  it('agrees with JSON.parse on 3000 seeded mutations of a configuration (delete, insert or replace one character)', () => {
    let seed = 12345;
    const random = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const alphabet = '{}[]",:\\ \n\t0123456789-+.eEtrufalsn\'a/\u00e9\x01';
    let invalid = 0;
    for (let k = 0; k < 3000; k++) {
      const at = random(sample.length);
      const c = alphabet[random(alphabet.length)]!;
      const op = random(3);
      const text =
        op === 0
          ? sample.slice(0, at) + sample.slice(at + 1)
          : op === 1
            ? sample.slice(0, at) + c + sample.slice(at)
            : sample.slice(0, at) + c + sample.slice(at + 1);
      let valid = true;
      try {
        JSON.parse(text);
      } catch {
        valid = false;
      }
      const problem = jsonSyntaxProblem(text);
      expect(problem === null, text).toBe(valid);
      if (problem) {
        invalid++;
        expect(problem.line).toBeGreaterThanOrEqual(1);
        expect(problem.column).toBeGreaterThanOrEqual(1);
        // The description is ours alone: nothing of the document appears in it.
        expect(problem.problem).not.toMatch(/isp|mx\.customer|dequeue\//);
      }
    }
    expect(invalid).toBeGreaterThan(1000);
  });

  it('points at the character where the text goes wrong', () => {
    expect(jsonSyntaxProblem('{\n  "a": 1\n  "b": 2\n}')).toEqual({
      line: 3,
      column: 3,
      problem: '"," or "}" was expected here',
    });
    expect(jsonSyntaxProblem('{"a": "unterminated')).toEqual({
      line: 1,
      column: 7,
      problem: 'a string is not closed (a missing ")',
    });
    expect(jsonSyntaxProblem('')).toMatchObject({
      line: 1,
      column: 1,
      problem: expect.stringMatching(/^the text ends/),
    });
    expect(jsonSyntaxProblem('[1, 2]')).toBeNull();
  });
});
