// Shell building blocks shared by every remote step. Each step is a bash script (shellcheck-clean, strict
// mode) run through `sudo bash -c`, so the script text is plain data that tests can lint and compare.

/** Quotes a value for bash: single quotes, with embedded single quotes closed and escaped. */
export function shq(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** A bash script in strict mode: the header every generated script starts with. */
export function script(...body: string[]): string {
    return ["#!/usr/bin/env bash", "set -euo pipefail", ...body].join("\n") + "\n";
}

/** The command line that runs a script as root on the host; stdin (file content) passes through. */
export function asRoot(text: string): string {
    return `sudo -n bash -c ${shq(text)}`;
}

/** When a bounded poll stops before its time is up: a test, and what it means, in words. */
export interface GiveUp {
    test: string;
    why: string;
}

/**
 * A bounded poll: runs `probe` every half second until it succeeds, or fails after `timeoutSeconds` (or as soon
 * as `giveUp`'s test passes) with a message that says what it waited for, followed by the output of `diagnose`.
 */
export function waitUntil(what: string, probe: string, timeoutSeconds: number, diagnose?: string, giveUp?: GiveUp): string[] {
    const fail = (message: string) => [
        `    echo ${shq(message)} >&2`,
        ...(diagnose ? [`    ${diagnose} >&2 || true`] : []),
        `    exit 1`,
    ];
    return [
        `echo ${shq(`waiting up to ${timeoutSeconds}s for ${what}`)}`,
        `deadline=$((SECONDS + ${timeoutSeconds}))`,
        `until ${probe}; do`,
        ...(giveUp ? [`  if ${giveUp.test}; then`, ...fail(`gave up waiting for ${what}: ${giveUp.why}`), `  fi`] : []),
        `  if (( SECONDS >= deadline )); then`,
        ...fail(`timed out after ${timeoutSeconds}s waiting for ${what}`),
        `  fi`,
        `  sleep 0.5`,
        `done`,
        `echo ${shq(`ready: ${what}`)}`,
    ];
}

/**
 * A bash line that defines `fast_sha256 FILE...`: OpenSSL's sha256 where there is one (it uses the CPU's SHA
 * instructions, coreutils' does not: 65 against 190 ms for kube-apiserver's 81 MB on a lab node), else
 * `sha256sum`. Either prints a line per file, the sum first.
 */
export const FAST_SHA256 =
    `if command -v openssl >/dev/null 2>&1; then fast_sha256() { openssl dgst -sha256 -r "$@"; }; else fast_sha256() { sha256sum "$@"; }; fi`;
