/**
 * Why a file named on the command line could not be read, in words: a bare errno (ENOENT,
 * EISDIR) tells a person little, node's own text ("illegal operation on a directory, read")
 * less.
 */
export function unreadableBecause(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'ENOTDIR':
      return 'no such file (a part of its path is a file, not a directory)';
    case 'EISDIR':
      return 'it is a directory, not a file';
    case 'EACCES':
    case 'EPERM':
      return `this user may not read it (${code})`;
    default:
      return code ?? (e as Error).message;
  }
}
