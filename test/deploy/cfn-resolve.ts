/**
 * CloudFormation values resolved as a deployment would resolve them: each resource gets the
 * physical name CloudFormation would generate (`<stack>-<logicalId>-<suffix>`, or the name the
 * template gives it), and `Ref`, `Fn::GetAtt`, `Fn::Join`, `Fn::Sub`, `Fn::Select` and
 * `Fn::Split` become the strings the function and its policies would see, in moto's account and
 * region (or the partition and region given); `Fn::If` and the conditions (`Fn::Equals`,
 * `Fn::And`, `Fn::Or`, `Fn::Not`, `Condition`) are decided the same way. A reference this file cannot resolve throws, naming it: the test then says what to add
 * instead of comparing with a guess.
 */
import { randomBytes } from 'node:crypto';
import type { CfnResource, CfnTemplate, CfnValue } from './cloud-assembly';

export interface Pseudo {
  readonly partition: string;
  readonly region: string;
  readonly accountId: string;
  readonly stackName: string;
  readonly urlSuffix: string;
}

/** What `Ref` and `Fn::GetAtt` give for one resource. */
export interface Physical {
  readonly ref: string;
  readonly attributes: Readonly<Record<string, string>>;
}

const suffix = () => randomBytes(6).toString('hex').toUpperCase().slice(0, 12);

/** CloudFormation's generated names: stack, logical id and a random suffix, within a length. */
function generatedName(pseudo: Pseudo, logicalId: string, max: number, lower = false): string {
  const tail = `-${suffix()}`;
  const name = `${pseudo.stackName}-${logicalId}`.slice(0, max - tail.length) + tail;
  return lower ? name.toLowerCase() : name;
}

/** The physical identity of a resource as CloudFormation would create it. */
export function physicalOf(
  pseudo: Pseudo,
  logicalId: string,
  resource: CfnResource,
  literal: (v: CfnValue) => string,
): Physical {
  const p = resource.Properties ?? {};
  const { partition: pa, region: r, accountId: a } = pseudo;
  const named = (prop: string, max: number, lower = false) =>
    p[prop] !== undefined ? literal(p[prop]) : generatedName(pseudo, logicalId, max, lower);
  switch (resource.Type) {
    case 'AWS::DynamoDB::Table': {
      const name = named('TableName', 255);
      return {
        ref: name,
        attributes: {
          Arn: `arn:${pa}:dynamodb:${r}:${a}:table/${name}`,
          StreamArn: `arn:${pa}:dynamodb:${r}:${a}:table/${name}/stream/2026-01-01T00:00:00.000`,
        },
      };
    }
    case 'AWS::S3::Bucket': {
      const name = named('BucketName', 63, true);
      return {
        ref: name,
        attributes: {
          Arn: `arn:${pa}:s3:::${name}`,
          DomainName: `${name}.s3.${pseudo.urlSuffix}`,
          RegionalDomainName: `${name}.s3.${r}.${pseudo.urlSuffix}`,
        },
      };
    }
    case 'AWS::SQS::Queue': {
      const fifo = p.FifoQueue === true || p.FifoQueue === 'true';
      const name =
        p.QueueName !== undefined
          ? literal(p.QueueName)
          : `${generatedName(pseudo, logicalId, fifo ? 75 : 80)}${fifo ? '.fifo' : ''}`;
      return {
        ref: `https://sqs.${r}.${pseudo.urlSuffix}/${a}/${name}`,
        attributes: {
          Arn: `arn:${pa}:sqs:${r}:${a}:${name}`,
          QueueName: name,
          QueueUrl: `https://sqs.${r}.${pseudo.urlSuffix}/${a}/${name}`,
        },
      };
    }
    case 'AWS::SNS::Topic': {
      const name = named('TopicName', 256);
      const arn = `arn:${pa}:sns:${r}:${a}:${name}`;
      return { ref: arn, attributes: { TopicArn: arn, TopicName: name } };
    }
    case 'AWS::Logs::LogGroup': {
      const name = named('LogGroupName', 512);
      return { ref: name, attributes: { Arn: `arn:${pa}:logs:${r}:${a}:log-group:${name}:*` } };
    }
    case 'AWS::Lambda::Function': {
      const name = named('FunctionName', 64);
      return { ref: name, attributes: { Arn: `arn:${pa}:lambda:${r}:${a}:function:${name}` } };
    }
    case 'AWS::IAM::Role': {
      const name = named('RoleName', 64);
      return {
        ref: name,
        attributes: {
          Arn: `arn:${pa}:iam::${a}:role/${p.Path ? `${literal(p.Path).replace(/^\/|\/$/g, '')}/` : ''}${name}`,
          RoleId: `AROA${suffix()}`,
        },
      };
    }
    case 'AWS::KMS::Key': {
      const id = '1234abcd-12ab-34cd-56ef-1234567890ab';
      return { ref: id, attributes: { Arn: `arn:${pa}:kms:${r}:${a}:key/${id}`, KeyId: id } };
    }
    case 'AWS::Scheduler::Schedule': {
      const name = named('Name', 64);
      const group = p.GroupName !== undefined ? literal(p.GroupName) : 'default';
      return {
        ref: name,
        attributes: { Arn: `arn:${pa}:scheduler:${r}:${a}:schedule/${group}/${name}` },
      };
    }
    case 'AWS::SSM::Parameter': {
      const name = named('Name', 1011);
      return {
        ref: name,
        attributes: {
          Type: p.Type !== undefined ? literal(p.Type) : 'String',
          Value: p.Value !== undefined ? literal(p.Value) : '',
        },
      };
    }
    case 'AWS::SecretsManager::Secret': {
      const name = named('Name', 256);
      const arn = `arn:${pa}:secretsmanager:${r}:${a}:secret:${name}-${suffix().slice(0, 6)}`;
      return { ref: arn, attributes: { Id: arn } };
    }
    case 'AWS::Events::EventBus': {
      const name = literal(p.Name);
      return {
        ref: name,
        attributes: { Arn: `arn:${pa}:events:${r}:${a}:event-bus/${name}`, Name: name },
      };
    }
    default:
      return { ref: generatedName(pseudo, logicalId, 64), attributes: {} };
  }
}

/** Resolves a template's intrinsics against physical names (computed once per resource). */
export class CfnResolver {
  private readonly physical = new Map<string, Physical>();

  constructor(
    private readonly template: CfnTemplate,
    readonly pseudo: Pseudo,
  ) {}

  /** The physical identity of a resource (CloudFormation's name for it, made once). */
  physicalOf(logicalId: string): Physical {
    let found = this.physical.get(logicalId);
    if (!found) {
      const resource = this.template.Resources[logicalId];
      if (!resource) throw new Error(`no resource ${logicalId} in the template`);
      found = physicalOf(this.pseudo, logicalId, resource, (v) => this.string(v));
      this.physical.set(logicalId, found);
    }
    return found;
  }

  /** Replaces what a resource resolves to (after creating it, when the service named it). */
  setPhysical(logicalId: string, physical: Physical): void {
    this.physical.set(logicalId, physical);
  }

  string(value: CfnValue): string {
    const resolved = this.resolve(value);
    if (typeof resolved === 'string') return resolved;
    if (typeof resolved === 'number' || typeof resolved === 'boolean') return String(resolved);
    throw new Error(`expected a string, got ${JSON.stringify(resolved)}`);
  }

  /** The value with every intrinsic function resolved (objects and arrays walked). */
  resolve(value: CfnValue): unknown {
    if (Array.isArray(value)) return value.map((v) => this.resolve(v));
    if (!value || typeof value !== 'object') return value;
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      const [fn] = keys as [string];
      const arg = o[fn];
      switch (fn) {
        case 'Ref':
          return this.ref(String(arg));
        case 'Fn::GetAtt': {
          const [id, attribute] = (Array.isArray(arg) ? arg : String(arg).split('.')) as [
            string,
            string,
          ];
          return this.getAtt(id, attribute);
        }
        case 'Fn::Join': {
          const [separator, parts] = arg as [string, CfnValue[]];
          return (this.resolve(parts) as unknown[]).map((p) => this.string(p)).join(separator);
        }
        case 'Fn::Sub': {
          const [text, vars] = (Array.isArray(arg) ? arg : [arg, {}]) as [
            string,
            Record<string, CfnValue>,
          ];
          return text.replace(/\$\{([^}!][^}]*)\}/g, (_, name: string) => {
            if (name in vars) return this.string(vars[name]);
            const [id, attribute] = name.split('.') as [string, string | undefined];
            return attribute === undefined ? this.ref(id) : this.getAtt(id, attribute);
          });
        }
        case 'Fn::Select': {
          const [index, list] = arg as [CfnValue, CfnValue];
          return (this.resolve(list) as unknown[])[Number(this.resolve(index))];
        }
        case 'Fn::Split': {
          const [separator, text] = arg as [string, CfnValue];
          return this.string(text).split(separator);
        }
        case 'Fn::If': {
          const [name, then, otherwise] = arg as [string, CfnValue, CfnValue];
          return this.resolve(this.condition(name) ? then : otherwise);
        }
        case 'Fn::Equals':
        case 'Fn::And':
        case 'Fn::Or':
        case 'Fn::Not':
        case 'Condition':
          return this.decide(value);
        default:
          if (fn.startsWith('Fn::'))
            throw new Error(
              `${fn} is not resolved by test/deploy/cfn-resolve.ts (${JSON.stringify(value).slice(0, 200)})`,
            );
      }
    }
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, this.resolve(v)]));
  }

  /** Whether the template's condition `name` holds. */
  condition(name: string): boolean {
    const expression = this.template.Conditions?.[name];
    if (expression === undefined) throw new Error(`no condition ${name} in the template`);
    return this.decide(expression);
  }

  private decide(value: CfnValue): boolean {
    const [fn, arg] = Object.entries(value as Record<string, CfnValue>)[0] ?? [];
    const args = arg as CfnValue[];
    switch (fn) {
      case 'Fn::Equals':
        return JSON.stringify(this.resolve(args[0]!)) === JSON.stringify(this.resolve(args[1]!));
      case 'Fn::And':
        return args.every((a) => this.decide(a));
      case 'Fn::Or':
        return args.some((a) => this.decide(a));
      case 'Fn::Not':
        return !this.decide(args[0]!);
      case 'Condition':
        return this.condition(String(arg));
    }
    throw new Error(`not a condition: ${JSON.stringify(value).slice(0, 200)}`);
  }

  private ref(name: string): string {
    const p = this.pseudo;
    switch (name) {
      case 'AWS::Partition':
        return p.partition;
      case 'AWS::Region':
        return p.region;
      case 'AWS::AccountId':
        return p.accountId;
      case 'AWS::StackName':
        return p.stackName;
      case 'AWS::StackId':
        return `arn:${p.partition}:cloudformation:${p.region}:${p.accountId}:stack/${p.stackName}/00000000-0000-4000-8000-000000000000`;
      case 'AWS::URLSuffix':
        return p.urlSuffix;
    }
    if (name.startsWith('AWS::'))
      throw new Error(`pseudo parameter ${name} is not resolved by test/deploy/cfn-resolve.ts`);
    const parameter = this.template.Parameters?.[name];
    if (parameter) {
      if (parameter.Default === undefined)
        throw new Error(`template parameter ${name} has no default`);
      return String(parameter.Default);
    }
    return this.physicalOf(name).ref;
  }

  private getAtt(id: string, attribute: string): string {
    const value = this.physicalOf(id).attributes[attribute];
    if (value === undefined) {
      throw new Error(
        `Fn::GetAtt ${id}.${attribute} (${this.template.Resources[id]?.Type}) is not resolved by test/deploy/cfn-resolve.ts: add the attribute there`,
      );
    }
    return value;
  }
}
