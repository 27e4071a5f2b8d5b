/**
 * The KMS key that encrypts each bucket of a template by default (SSE-KMS), by the bucket's
 * physical name: the call decoder (aws-calls.ts, `bucketKeyOf`) adds what S3 asks KMS for with
 * the caller's rights, so that a missing kms: grant fails the IAM check rather than a deployment.
 */
import type { CfnResolver } from './cfn-resolve';
import type { CfnTemplate, CfnValue } from './cloud-assembly';

export function bucketKeys(
  template: CfnTemplate,
  resolver: CfnResolver,
): (bucket: string) => string | undefined {
  const keys = new Map<string, string>();
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type !== 'AWS::S3::Bucket') continue;
    const rules = ((r.Properties?.BucketEncryption as any)?.ServerSideEncryptionConfiguration ??
      []) as {
      ServerSideEncryptionByDefault?: { SSEAlgorithm?: string; KMSMasterKeyID?: CfnValue };
    }[];
    const byDefault = rules[0]?.ServerSideEncryptionByDefault;
    if (byDefault?.SSEAlgorithm !== 'aws:kms' || byDefault.KMSMasterKeyID === undefined) continue;
    keys.set(resolver.physicalOf(id).ref, resolver.string(byDefault.KMSMasterKeyID));
  }
  return (bucket) => keys.get(bucket);
}
