/**
 * The kernel tree the differential targets compile: Debian's `linux-source-X.Y` package, fetched
 * with `apt-get download`, cached between runs, and only the files the targets name extracted from
 * its tarball. Nothing from the tree is ever written into the repository.
 *
 * Cache layout (PHYSR_KERNEL_CACHE, default ~/.cache/physr-kernel):
 *   debs/<package>_<version>_all.deb      the downloaded package
 *   trees/<package>_<version>/<files>     the extracted files (a `.files.json` lists what is there)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

export const DEFAULT_PACKAGE = 'linux-source-6.12';

export interface KernelTree {
  /** The extracted tree's root: `<root>/lib/scatterlist.c` is the kernel file. */
  readonly root: string;
  /** The downloaded package. */
  readonly deb: string;
  readonly packageName: string;
  /** The Debian version, e.g. 6.12.117-1~deb12u1. */
  readonly packageVersion: string;
  /** major.minor of the kernel release, e.g. "6.12". */
  readonly release: string;
}

export function kernelCacheDir(): string {
  return process.env.PHYSR_KERNEL_CACHE ?? join(homedir(), '.cache', 'physr-kernel');
}

function run(cmd: string, args: string[], cwd?: string): { ok: boolean; out: string } {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', maxBuffer: 64 << 20 });
  return { ok: r.status === 0, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** Compares dotted release numbers ("6.12" < "6.13" < "7.1"). */
export function compareRelease(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** The newest `linux-source-X.Y` apt knows (apt-get update first when it knows none). */
export function newestSourcePackage(log: (line: string) => void): string {
  const search = (): string[] => {
    const r = run('apt-cache', ['search', '--names-only', '^linux-source-[0-9]+\\.[0-9]+$']);
    return r.out
      .split('\n')
      .map((line) => line.split(' ')[0] ?? '')
      .filter((name) => /^linux-source-\d+\.\d+$/.test(name));
  };
  let names = search();
  if (names.length === 0) {
    log('apt-cache knows no linux-source package: running apt-get update');
    run('apt-get', ['update']);
    names = search();
  }
  if (names.length === 0) throw new Error('apt knows no linux-source-X.Y package');
  names.sort((a, b) => compareRelease(a.slice('linux-source-'.length), b.slice('linux-source-'.length)));
  return names[names.length - 1]!;
}

function cachedDeb(debDir: string, packageName: string): string | undefined {
  if (!existsSync(debDir)) return undefined;
  const debs = readdirSync(debDir).filter((f) => f.startsWith(`${packageName}_`) && f.endsWith('.deb'));
  debs.sort();
  return debs.length > 0 ? join(debDir, debs[debs.length - 1]!) : undefined;
}

/** The package's .deb in the cache, downloaded through apt on first use. */
function fetchDeb(packageName: string, log: (line: string) => void): string {
  const debDir = join(kernelCacheDir(), 'debs');
  const cached = cachedDeb(debDir, packageName);
  if (cached) return cached;
  mkdirSync(debDir, { recursive: true });
  log(`apt-get download ${packageName} into ${debDir}`);
  let r = run('apt-get', ['download', packageName], debDir);
  if (!r.ok) {
    log('apt-get download failed: running apt-get update and retrying');
    run('apt-get', ['update']);
    r = run('apt-get', ['download', packageName], debDir);
  }
  const deb = cachedDeb(debDir, packageName);
  if (!r.ok || !deb) throw new Error(`apt-get download ${packageName} failed:\n${r.out}`);
  return deb;
}

/**
 * The kernel tree holding at least `files` (paths or directories inside the tree). Extracts what is
 * missing from the package's tarball in one pass.
 */
export function kernelTree(
  files: readonly string[],
  options: { packageName?: string; log?: (line: string) => void } = {},
): KernelTree {
  const log = options.log ?? (() => {});
  const packageName = options.packageName ?? DEFAULT_PACKAGE;
  const deb = fetchDeb(packageName, log);
  const base = deb.slice(deb.lastIndexOf('/') + 1);
  const packageVersion = base.split('_')[1] ?? 'unknown';
  const release = packageName.slice('linux-source-'.length);
  const root = join(kernelCacheDir(), 'trees', `${packageName}_${packageVersion}`);
  const manifestPath = join(root, '.files.json');
  const have: string[] = existsSync(manifestPath) ? JSON.parse(readFileSync(manifestPath, 'utf8')) : [];
  const wanted = [...new Set([...have, ...files])].sort();
  if (files.every((f) => have.includes(f))) return { root, deb, packageName, packageVersion, release };

  // The .deb holds usr/src/<package>.tar.xz whose members start with <package>/.
  const staging = `${root}.staging-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  log(`extracting ${wanted.length} paths from ${base}`);
  const inner = join(staging, 'source.tar.xz');
  execFileSync('sh', [
    '-c',
    'dpkg-deb --fsys-tarfile "$1" | tar -xO -f - "./usr/src/$2.tar.xz" > "$3"',
    'sh',
    deb,
    packageName,
    inner,
  ]);
  const r = run(
    'tar',
    ['-xJf', inner, '-C', staging, ...wanted.map((f) => `${packageName}/${f}`)],
    undefined,
  );
  if (!r.ok) throw new Error(`extracting ${wanted.join(', ')} from ${base} failed:\n${r.out}`);
  rmSync(inner);
  writeFileSync(join(staging, packageName, '.files.json'), JSON.stringify(wanted));
  rmSync(root, { recursive: true, force: true });
  mkdirSync(join(root, '..'), { recursive: true });
  renameSync(join(staging, packageName), root);
  rmSync(staging, { recursive: true, force: true });
  return { root, deb, packageName, packageVersion, release };
}

/**
 * The package's Debian changelog (usr/share/doc/<package>/changelog.Debian.gz): it names the stable
 * backports the tree carries, so a rule changed upstream after X.Y can be checked for in X.Y.z.
 */
export function packageChangelog(tree: KernelTree): string {
  const cached = join(tree.root, '.changelog');
  if (!existsSync(cached)) {
    const text = execFileSync(
      'sh',
      [
        '-c',
        'dpkg-deb --fsys-tarfile "$1" | tar -xO -f - "./usr/share/doc/$2/changelog.Debian.gz" | gzip -dc',
        'sh',
        tree.deb,
        tree.packageName,
      ],
      { encoding: 'utf8', maxBuffer: 256 << 20 },
    );
    writeFileSync(cached, text);
  }
  return readFileSync(cached, 'utf8');
}
