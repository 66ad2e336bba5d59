/** How tests find the real services `npm test` provides. */

/** The three databases' URLs, and the name of the container image built from the Dockerfile. */
export type ServiceUrlName = 'TEST_MYSQL_URL' | 'TEST_POSTGRES_URL' | 'TEST_REDIS_URL' | 'TEST_CONTAINER_IMAGE';

/** True when the tests run in CI, where a skipped service test would hide a failure. */
export function isCi(): boolean {
  return process.env['CI'] === 'true' || process.env['CI'] === '1';
}

/**
 * The service URL, or undefined when it is not set (the caller skips its tests).
 * Under CI=true a missing URL throws instead: there, every test must run.
 */
export function requireServiceUrl(name: ServiceUrlName): string | undefined {
  const url = process.env[name];
  if (url !== undefined && url !== '') return url;
  if (isCi()) {
    throw new Error(`${name} is not set and CI=true: run the tests with \`npm test\`, which starts throwaway servers, or set ${name}`);
  }
  return undefined;
}
