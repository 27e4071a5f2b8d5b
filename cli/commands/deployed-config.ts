/**
 * The configuration as deployed in SSM, read as raw JSON objects (not normalised: `config pull`
 * gives back what was pushed, and `config diff` compares like with like). The listing is the
 * function's own (lambda/adapters/ssm-config.ts): `<prefix>/settings` and every parameter under
 * `<prefix>/targets/`, recursively, decrypted; the last path segment is the target's name.
 */
import {
  GetParameterCommand,
  GetParametersByPathCommand,
  type Parameter,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { describeAwsError } from '../../lambda/adapters/aws-errors';
import { MAX_TARGET_PARAMETERS } from '../../lambda/adapters/ssm-config';
import { ConfigError, DequeueError } from '../../lambda/core/errors';

export type ParameterType = 'String' | 'SecureString';

export interface DeployedParameter {
  readonly parameter: string;
  /** The last path segment: the target's name. */
  readonly segment: string;
  readonly type: ParameterType;
  /** The parsed value; undefined when it is not a JSON object (`problem` says why). */
  readonly value?: Record<string, unknown>;
  readonly problem?: string;
}

export interface DeployedConfig {
  /** Undefined when `<prefix>/settings` does not exist. */
  readonly settings?: DeployedParameter;
  /** Sorted by parameter name. */
  readonly targets: readonly DeployedParameter[];
}

export async function readDeployed(client: SSMClient, prefix: string): Promise<DeployedConfig> {
  const [settings, targets] = await Promise.all([
    readSettings(client, prefix),
    listTargets(client, prefix),
  ]);
  return { settings, targets };
}

async function readSettings(
  client: SSMClient,
  prefix: string,
): Promise<DeployedParameter | undefined> {
  const name = `${prefix}/settings`;
  try {
    const out = await client.send(new GetParameterCommand({ Name: name, WithDecryption: true }));
    return out.Parameter ? deployed(out.Parameter) : undefined;
  } catch (e) {
    if ((e as { name?: string }).name === 'ParameterNotFound') return undefined;
    throw unreadable(e, `GetParameter ${name}`);
  }
}

async function listTargets(client: SSMClient, prefix: string): Promise<DeployedParameter[]> {
  const path = `${prefix}/targets`;
  const parameters: Parameter[] = [];
  let token: string | undefined;
  do {
    let page;
    try {
      page = await client.send(
        new GetParametersByPathCommand({
          Path: path,
          Recursive: true,
          WithDecryption: true,
          MaxResults: 10,
          NextToken: token,
        }),
      );
    } catch (e) {
      throw unreadable(e, `GetParametersByPath ${path}`);
    }
    parameters.push(...(page.Parameters ?? []));
    if (parameters.length > MAX_TARGET_PARAMETERS)
      throw new ConfigError(path, '', `more than ${MAX_TARGET_PARAMETERS} target parameters`);
    token = page.NextToken;
  } while (token);
  return parameters.map(deployed).sort((a, b) => (a.parameter < b.parameter ? -1 : 1));
}

function deployed(p: Parameter): DeployedParameter {
  const parameter = p.Name!;
  const base = {
    parameter,
    segment: parameter.slice(parameter.lastIndexOf('/') + 1),
    type: (p.Type === 'SecureString' ? 'SecureString' : 'String') as ParameterType,
  };
  let value: unknown;
  try {
    value = JSON.parse(p.Value ?? '');
  } catch {
    // The text may be a SecureString's: never quote it.
    return { ...base, problem: 'is not valid JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { ...base, problem: 'is not a JSON object' };
  return { ...base, value: value as Record<string, unknown> };
}

/** Nothing could be read: a configuration-level fault for the command (exit 2). */
function unreadable(e: unknown, what: string): DequeueError {
  return new DequeueError('config', `SSM ${what} failed: ${describeAwsError(e)}`, { cause: e });
}
