/**
 * The configuration from SSM Parameter Store (docs/configuration.md "In SSM Parameter Store"):
 * `<prefix>/settings` holds the settings object, `<prefix>/targets/<name>` one target each.
 *
 * - Targets are listed with GetParametersByPath, Recursive and WithDecryption, so String and
 *   SecureString parameters both work and targets may be grouped in sub-folders; each page holds
 *   at most 10 parameters (the API's limit), so thousands of targets are a few hundred calls.
 * - The parameter's last path segment is the target's name; a `name` field inside may repeat it
 *   (`dequeue config push` writes it) but not differ from it.
 * - One parameter's fault stays with that target: bad JSON, a bad field, a name that differs
 *   from the parameter's last path segment, a duplicate name or a secret outside the function's
 *   secret prefix become an InvalidTarget (a `config-error` result naming the parameter and the
 *   field) while the other targets still run.
 * - What affects every target throws ConfigUnavailableError, carrying the target names known, so
 *   the handler can report each of them instead of signalling with guessed settings:
 *   an invalid settings parameter (its `everyNthCycle` and `concurrency` decide for everyone), and
 *   any SSM error (throttling, access denied, network), for which the names come from the last
 *   listing this warm instance made.
 *
 * - A fan-out worker reads only what its work orders name (`lookup`): the settings and those
 *   targets' parameters, 10 names a GetParameters call, with the same checks as a listing; a name
 *   outside `<prefix>/targets/`, or whose last segment is not the order's target, is refused
 *   without a call (docs/security.md: a work order is never trusted to say where a target is).
 *
 * GetParametersByPath: https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParametersByPath.html
 * GetParameters: https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html
 */
import {
  GetParameterCommand,
  GetParametersByPathCommand,
  GetParametersCommand,
  type Parameter,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { parseSettings, parseTarget, type Settings, type Target } from '../core/config';
import { ConfigError, DequeueError, type ErrorKind } from '../core/errors';
import type { ConfigSource, InvalidTarget, LoadedConfig, TargetReference } from '../core/ports';
import { awsErrorKind, describeAwsError } from './aws-errors';
import { DEFAULT_SSM_PREFIX } from '../default-prefixes';

/** GetParametersByPath returns at most 10 parameters per page; GetParameters takes at most 10 names. */
const PAGE_SIZE = 10;
/** A bound on the listing: 10,000 targets is far beyond one Lambda run's worth of signalling. */
export const MAX_TARGET_PARAMETERS = 10_000;

export interface SsmConfigOptions {
  /** Parameter path prefix, starting with `/`. Default `/dequeue`. */
  readonly prefix?: string;
  /**
   * When set, every `auth.secretId` must lie under it (the function's IAM policy allows only
   * these secrets): a target outside it is a clear config error instead of an AccessDenied later.
   */
  readonly secretPrefix?: string;
  /**
   * When set, the only TCP ports the function can reach (its security group's, DEQUEUE_EGRESS_PORTS):
   * a target on another port is a clear config error instead of a connection that times out.
   */
  readonly reachablePorts?: readonly number[];
}

/**
 * The configuration could not be loaded for anyone. `targets` names every target known (all
 * listed ones for invalid settings; the last successful listing's for an SSM error; possibly
 * none on a cold start), so each can be reported with this error.
 */
export class ConfigUnavailableError extends DequeueError {
  readonly targets: readonly string[];
  /** What could not be read: an SSM parameter or path. */
  readonly source: string;

  constructor(
    kind: ErrorKind,
    source: string,
    targets: readonly string[],
    message: string,
    options?: { cause?: unknown },
  ) {
    super(kind, message, options);
    this.name = 'ConfigUnavailableError';
    this.source = source;
    this.targets = targets;
  }
}

/** Normalise and check a prefix: SSM hierarchies start with `/`; no trailing `/`. */
export function normalisePrefix(prefix: string): string {
  const trimmed = prefix.replace(/\/+$/, '');
  if (!trimmed.startsWith('/') || trimmed.length < 2) {
    throw new ConfigError(
      'DEQUEUE_SSM_PREFIX',
      '',
      `"${prefix}" must be an SSM parameter path such as /dequeue`,
    );
  }
  return trimmed;
}

/** True when `secretId` (a name or an ARN) lies under `prefix`. */
export function secretIdWithin(secretId: string, prefix: string): boolean {
  if (!secretId.startsWith('arn:')) return secretId.startsWith(prefix);
  // arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 random characters>
  const at = secretId.indexOf(':secret:');
  return at >= 0 && secretId.slice(at + ':secret:'.length).startsWith(prefix);
}

/**
 * JSON.parse's own message quotes the text it failed on, and a SecureString may hold something
 * that must not reach a log: keep only the position.
 */
function parseJsonQuietly(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const position = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new ConfigError(
      where,
      '',
      `is not valid JSON${position ? ` (error at character ${position})` : ''}`,
    );
  }
}

export class SsmConfigSource implements ConfigSource {
  readonly prefix: string;
  private readonly secretPrefix?: string;
  private readonly reachablePorts?: readonly number[];
  /** Target names of the last successful listing: who to report to when SSM fails. */
  private lastKnown: readonly string[] = [];

  constructor(
    private readonly client: SSMClient,
    options: SsmConfigOptions = {},
  ) {
    this.prefix = normalisePrefix(options.prefix ?? DEFAULT_SSM_PREFIX);
    this.secretPrefix = options.secretPrefix;
    this.reachablePorts = options.reachablePorts;
  }

  get settingsName(): string {
    return `${this.prefix}/settings`;
  }

  get targetsPath(): string {
    return `${this.prefix}/targets`;
  }

  async load(signal?: AbortSignal): Promise<LoadedConfig> {
    const [settingsText, parameters] = await Promise.all([
      this.readSettings(signal),
      this.listTargets(signal),
    ]);
    const { targets, invalid } = this.parseTargets(parameters);
    const names = [...invalid.map((t) => t.name), ...targets.map((t) => t.name)];
    this.lastKnown = names;
    const locations: Record<string, string> = {};
    for (const p of parameters) {
      const name = p.Name!.slice(p.Name!.lastIndexOf('/') + 1);
      locations[name] ??= p.Name!;
    }
    return { settings: this.settingsFrom(settingsText, names), targets, invalid, locations };
  }

  /**
   * The settings and the targets `references` name, as they are in SSM now: GetParameters, the
   * settings with the first nine names and ten names a call after that. A reference whose
   * parameter is not under `<prefix>/targets/` or does not end in its name is refused unread; one
   * that does not exist is an InvalidTarget saying so.
   */
  async lookup(
    references: readonly TargetReference[],
    signal?: AbortSignal,
  ): Promise<LoadedConfig> {
    const invalid: InvalidTarget[] = [];
    const unknown: InvalidTarget[] = [];
    const wanted = new Map<string, string>(); // parameter -> target name
    for (const { name, location } of references) {
      const parameter = location ?? `${this.targetsPath}/${name}`;
      if (!parameter.startsWith(`${this.targetsPath}/`) || !parameter.endsWith(`/${name}`)) {
        unknown.push({
          name,
          error: new ConfigError(
            parameter,
            '',
            `is not where this deployment keeps target "${name}" (a parameter under ${this.targetsPath}/ ending in /${name}); nothing is read from it`,
          ),
        });
        continue;
      }
      wanted.set(parameter, name);
    }
    const names = [this.settingsName, ...wanted.keys()];
    const found = new Map<string, Parameter>();
    const batches: string[][] = [];
    for (let i = 0; i < names.length; i += PAGE_SIZE) batches.push(names.slice(i, i + PAGE_SIZE));
    await Promise.all(
      batches.map(async (batch) => {
        let out;
        try {
          out = await this.client.send(
            new GetParametersCommand({ Names: batch, WithDecryption: true }),
            { abortSignal: signal },
          );
        } catch (e) {
          throw this.unavailable(e, batch.join(', '), 'GetParameters');
        }
        for (const p of out.Parameters ?? []) if (p.Name) found.set(p.Name, p);
      }),
    );
    const targets: Target[] = [];
    const locations: Record<string, string> = {};
    for (const [parameter, name] of wanted) {
      const p = found.get(parameter);
      if (!p || locations[name] !== undefined) {
        unknown.push({
          name,
          error: new ConfigError(
            parameter,
            '',
            p
              ? `names target "${name}" as ${locations[name]} does; only one is read`
              : 'does not exist (removed since the cycle queued this target?); nothing was sent',
          ),
        });
        continue;
      }
      locations[name] = parameter;
      try {
        targets.push(this.parseTarget(p, name));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        invalid.push({ name, error: e });
      }
    }
    const settings = this.settingsFrom(found.get(this.settingsName)?.Value, [
      ...invalid.map((t) => t.name),
      ...targets.map((t) => t.name),
    ]);
    return { settings, targets, invalid, locations, unknown };
  }

  /** The settings from their parameter's text (absent: every setting's default). */
  private settingsFrom(text: string | undefined, names: readonly string[]): Settings {
    try {
      return parseSettings(
        text === undefined ? undefined : parseJsonQuietly(text, this.settingsName),
        this.settingsName,
      );
    } catch (e) {
      const error = e as ConfigError;
      throw new ConfigUnavailableError(
        'config',
        this.settingsName,
        names,
        `${error.message}; no target is signalled until the settings are fixed`,
        { cause: e },
      );
    }
  }

  /** The settings parameter's text; undefined when it does not exist (every setting is optional). */
  private async readSettings(signal?: AbortSignal): Promise<string | undefined> {
    try {
      const out = await this.client.send(
        new GetParameterCommand({ Name: this.settingsName, WithDecryption: true }),
        { abortSignal: signal },
      );
      return out.Parameter?.Value;
    } catch (e) {
      if ((e as { name?: string }).name === 'ParameterNotFound') return undefined;
      throw this.unavailable(e, this.settingsName, 'GetParameter');
    }
  }

  private async listTargets(signal?: AbortSignal): Promise<Parameter[]> {
    const parameters: Parameter[] = [];
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new GetParametersByPathCommand({
            Path: this.targetsPath,
            Recursive: true,
            WithDecryption: true,
            MaxResults: PAGE_SIZE,
            NextToken: token,
          }),
          { abortSignal: signal },
        );
      } catch (e) {
        throw this.unavailable(e, this.targetsPath, 'GetParametersByPath');
      }
      parameters.push(...(page.Parameters ?? []));
      if (parameters.length > MAX_TARGET_PARAMETERS) {
        throw new ConfigUnavailableError(
          'config',
          this.targetsPath,
          this.lastKnown,
          `${this.targetsPath}: more than ${MAX_TARGET_PARAMETERS} target parameters; split them across deployments`,
        );
      }
      token = page.NextToken;
    } while (token);
    return parameters;
  }

  private unavailable(e: unknown, source: string, operation: string): ConfigUnavailableError {
    const kind = awsErrorKind(e);
    return new ConfigUnavailableError(
      kind,
      source,
      this.lastKnown,
      `SSM ${operation} ${source} failed: ${describeAwsError(e)}`,
      { cause: e },
    );
  }

  private parseTargets(parameters: readonly Parameter[]): {
    targets: Target[];
    invalid: InvalidTarget[];
  } {
    const targets: Target[] = [];
    const invalid: InvalidTarget[] = [];
    // Group by the last path segment (the target's name) so duplicates in sub-folders are found;
    // sorted, so which one is reported under the plain name does not depend on SSM's order.
    const byName = new Map<string, Parameter[]>();
    for (const parameter of [...parameters].sort((a, b) => (a.Name! < b.Name! ? -1 : 1))) {
      const segment = parameter.Name!.slice(parameter.Name!.lastIndexOf('/') + 1);
      byName.set(segment, [...(byName.get(segment) ?? []), parameter]);
    }
    for (const [segment, group] of byName) {
      if (group.length > 1) {
        // Which of them is meant is anyone's guess: none runs until the operator decides.
        const all = group.map((p) => p.Name!).join(', ');
        for (const [i, p] of group.entries()) {
          invalid.push({
            name: i === 0 ? segment : p.Name!,
            error: new ConfigError(
              p.Name!,
              'name',
              `"${segment}" is the name of several parameters (${all}); names must be unique`,
            ),
          });
        }
        continue;
      }
      const parameter = group[0]!;
      try {
        targets.push(this.parseTarget(parameter, segment));
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        invalid.push({ name: segment, error: e });
      }
    }
    return { targets, invalid };
  }

  private parseTarget(parameter: Parameter, segment: string): Target {
    const where = parameter.Name!;
    const document = parseJsonQuietly(parameter.Value ?? '', where);
    // The parameter's name gives the target's name; a `name` inside may repeat it, never differ.
    const named =
      typeof document === 'object' &&
      document !== null &&
      !Array.isArray(document) &&
      !('name' in document)
        ? { name: segment, ...document }
        : document;
    const target = parseTarget(named, where);
    if (target.name !== segment) {
      throw new ConfigError(
        where,
        'name',
        `"${target.name}" differs from the parameter's last path segment "${segment}"; they must be the same`,
      );
    }
    if (
      target.auth &&
      this.secretPrefix !== undefined &&
      !secretIdWithin(target.auth.secretId, this.secretPrefix)
    ) {
      throw new ConfigError(
        where,
        'auth.secretId',
        `"${target.auth.secretId}" is outside the secrets this function may read (names starting with "${this.secretPrefix}", DEQUEUE_SECRET_PREFIX)`,
      );
    }
    if (this.reachablePorts && !this.reachablePorts.includes(target.port)) {
      throw new ConfigError(
        where,
        'port',
        `${target.port} is not among the ports this function may connect to (${this.reachablePorts.join(', ')}: the stack's egressPorts, DEQUEUE_EGRESS_PORTS); add it to "egressPorts" in cdk.json and deploy`,
      );
    }
    return target;
  }
}
