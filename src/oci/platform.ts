import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { InvalidPlatformError, NoMatchingPlatformError } from '../errors.js';
import { isImageManifestMediaType } from './mediatypes.js';
import type { Descriptor, ImageIndex, Platform } from './types.js';

// Go's GOOS / GOARCH lists (as containerd's platforms database keeps them), for one-word specifiers.
const KNOWN_OS = new Set([
  'aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd',
  'plan9', 'solaris', 'windows', 'zos',
]);
const KNOWN_ARCH = new Set([
  '386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64',
  'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm',
]);
const COMPONENT = /^[A-Za-z0-9_.-]+$/;
const OS_WITH_VERSION = /^([A-Za-z0-9_.-]+)(?:\(([A-Za-z0-9_.-]*)\))?$/;

/**
 * Parses `os/arch[/variant]` (also `windows(10.0.17763)/amd64`, or a lone known os or arch
 * completed from the host) and returns it normalised.
 */
export function parsePlatform(spec: string): Platform {
  if (typeof spec !== 'string' || spec.trim() === '') throw new InvalidPlatformError(String(spec), 'empty platform');
  const parts = spec.split('/');
  if (parts.length > 3) throw new InvalidPlatformError(spec, 'too many components (want os/arch[/variant])');
  parts.forEach((part, i) => {
    if (part === '') throw new InvalidPlatformError(spec, `component ${i + 1} is empty (want os/arch[/variant])`);
  });

  const osMatch = OS_WITH_VERSION.exec(parts[0]!);
  for (const part of parts.slice(1)) {
    if (!COMPONENT.test(part)) throw new InvalidPlatformError(spec, `invalid component ${JSON.stringify(part)}`);
  }
  if (osMatch === null) throw new InvalidPlatformError(spec, `invalid component ${JSON.stringify(parts[0])}`);
  const [, first, osVersion] = osMatch as unknown as [string, string, string | undefined];

  let platform: Platform;
  if (parts.length === 1) {
    const lower = first.toLowerCase();
    const host = hostPlatform();
    if (KNOWN_OS.has(normalizeOs(lower))) {
      platform = { os: lower, architecture: host.architecture, ...(host.variant ? { variant: host.variant } : {}) };
    } else if (KNOWN_ARCH.has(normalizeArch(lower, '').architecture)) {
      if (osVersion !== undefined) throw new InvalidPlatformError(spec, 'an os version needs an os');
      platform = { os: host.os, architecture: lower };
    } else {
      throw new InvalidPlatformError(spec, `${JSON.stringify(first)} is neither a known operating system nor a known architecture`);
    }
  } else {
    platform = { os: first, architecture: parts[1]!, ...(parts[2] === undefined ? {} : { variant: parts[2] }) };
  }
  if (osVersion) platform['os.version'] = osVersion;
  return normalizePlatform(platform);
}

/** containerd's platforms.Normalize: canonical os, architecture and variant names. */
export function normalizePlatform(p: Platform): Platform {
  const { architecture, variant } = normalizeArch(p.architecture, p.variant ?? '');
  const out: Platform = { ...p, os: normalizeOs(p.os), architecture };
  if (variant === '') delete out.variant;
  else out.variant = variant;
  return out;
}

function normalizeOs(os: string): string {
  const lower = os.toLowerCase();
  return lower === 'macos' ? 'darwin' : lower;
}

function normalizeArch(arch: string, variant: string): { architecture: string; variant: string } {
  const a = arch.toLowerCase();
  const v = variant.toLowerCase();
  switch (a) {
    case 'i386':
    case 'i686':
    case '386':
      return { architecture: '386', variant: '' };
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return { architecture: 'amd64', variant: v === 'v1' ? '' : v };
    case 'aarch64':
    case 'arm64':
      return { architecture: 'arm64', variant: v === '8' || v === 'v8' ? '' : v };
    case 'armhf':
      return { architecture: 'arm', variant: 'v7' };
    case 'armel':
      return { architecture: 'arm', variant: 'v6' };
    case 'arm':
      if (v === '' || v === '7') return { architecture: 'arm', variant: 'v7' };
      if (v === '5' || v === '6' || v === '8') return { architecture: 'arm', variant: `v${v}` };
      return { architecture: 'arm', variant: v };
    default:
      return { architecture: a, variant: v };
  }
}

/** `linux/arm/v7`, `linux/amd64`: the form `--platform` takes and errors print. */
export function formatPlatform(p: Pick<Platform, 'os' | 'architecture' | 'variant'>): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

let cachedHost: Platform | undefined;

/** The platform this process runs on, normalised (`linux/amd64` on x86-64 Linux). */
export function hostPlatform(): Platform {
  cachedHost ??= normalizePlatform(detectHostPlatform());
  return { ...cachedHost };
}

function detectHostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform === 'sunos' ? 'solaris' : process.platform;
  switch (process.arch) {
    case 'x64':
      return { os, architecture: 'amd64' };
    case 'ia32':
      return { os, architecture: '386' };
    case 'arm':
      return { os, architecture: 'arm', variant: hostArmVariant() };
    case 'ppc64':
      return { os, architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
    case 'mipsel':
      return { os, architecture: 'mipsle' };
    default:
      return { os, architecture: process.arch };
  }
}

/** 32-bit ARM: the kernel's "CPU architecture" line, else what node was built for, else v7. */
function hostArmVariant(): string {
  try {
    const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
    const m = /^CPU architecture\s*:\s*(\d+)/im.exec(cpuinfo);
    if (m) return `v${Math.min(Number(m[1]), 8)}`;
  } catch {
    // not Linux, or /proc is not mounted: fall through
  }
  const built = (process.config.variables as Record<string, unknown>).arm_version;
  if (typeof built === 'string' || typeof built === 'number') return `v${built}`;
  return 'v7';
}

/**
 * The platforms `want` can run, best first (containerd's platforms.Only): the exact platform,
 * then older variants (arm/v7 → v6 → v5; arm64/v8.2 → v8.1 → v8), then 32-bit relatives
 * (arm64 → arm/v8…v5, amd64 → 386).
 */
export function compatiblePlatforms(want: Platform): Platform[] {
  const p = normalizePlatform(want);
  const base = { os: p.os };
  const out: Platform[] = [p];
  const variantNumber = (v: string | undefined) => /^v(\d+)$/.exec(v ?? '')?.[1];
  switch (p.architecture) {
    case 'amd64': {
      const n = Number(variantNumber(p.variant) ?? 1);
      for (let k = n - 1; k >= 1; k--) out.push({ ...base, architecture: 'amd64', ...(k > 1 ? { variant: `v${k}` } : {}) });
      out.push({ ...base, architecture: '386' });
      break;
    }
    case 'arm': {
      const n = Number(variantNumber(p.variant) ?? 0);
      for (let k = n - 1; k >= 5; k--) out.push({ ...base, architecture: 'arm', variant: `v${k}` });
      break;
    }
    case 'arm64': {
      const m = /^v(\d+)(?:\.(\d+))?$/.exec(p.variant ?? 'v8');
      if (m) {
        let major = Number(m[1]);
        let minor = Number(m[2] ?? 0);
        const arm64 = (maj: number, min: number): Platform => {
          const variant = min === 0 ? `v${maj}` : `v${maj}.${min}`;
          return { ...base, architecture: 'arm64', ...(variant === 'v8' ? {} : { variant }) };
        };
        if (major === 9) {
          for (let k = minor - 1; k >= 0; k--) out.push(arm64(9, k));
          // v9.x is a superset of v8.(x+5).
          major = 8;
          minor += 5;
          out.push(arm64(8, minor));
        }
        if (major === 8) for (let k = minor - 1; k >= 0; k--) out.push(arm64(8, k));
        if (major >= 8) for (let k = 8; k >= 5; k--) out.push({ ...base, architecture: 'arm', variant: `v${k}` });
      }
      break;
    }
  }
  return out;
}

function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

/** Whether an image built for `have` runs where `want` is asked for (after normalising both). */
export function platformMatches(want: Platform, have: Platform): boolean {
  const h = normalizePlatform(have);
  return compatiblePlatforms(want).some((c) => samePlatform(c, h));
}

/** Attestation manifests (buildx provenance/SBOM) sit in indexes as `unknown/unknown`. */
function isAttestation(d: Descriptor): boolean {
  return (
    (d.platform?.os === 'unknown' && d.platform.architecture === 'unknown') ||
    d.annotations?.['vnd.docker.reference.type'] === 'attestation-manifest'
  );
}

/**
 * Picks the manifest for `want` from an index or manifest list: the best entry in
 * compatiblePlatforms order, the first in index order within a rank. An entry without a
 * platform is a last resort, as in containerd. Throws NoMatchingPlatformError listing
 * what the index offers.
 */
export function selectManifest(index: ImageIndex, want: Platform, subject: string): Descriptor {
  const entries = index.manifests.filter((d) => !isAttestation(d));
  const withPlatform = entries
    .filter((d): d is Descriptor & { platform: Platform } => d.platform !== undefined)
    .map((d) => ({ d, p: normalizePlatform(d.platform) }));
  for (const candidate of compatiblePlatforms(want)) {
    const hit = withPlatform.find(({ p }) => samePlatform(candidate, p));
    if (hit) return hit.d;
  }
  const unlabelled = entries.find((d) => d.platform === undefined && isImageManifestMediaType(d.mediaType));
  if (unlabelled) return unlabelled;
  const available = [...new Set(withPlatform.map(({ d }) => formatPlatform(d.platform)))];
  throw new NoMatchingPlatformError(subject, formatPlatform(normalizePlatform(want)), available);
}
