/**
 * Cases of the corpus that fail today because of a known stratum defect that is being fixed:
 * their tests are `todo` (reported, not failing the run) and name the defect. When a fix lands,
 * the todo test passes and its entry here should go.
 */
export interface KnownDefect {
  feature: string;
  /** Writers it shows with (all when absent). */
  writers?: RegExp;
  /** Backends it shows on (all when absent). */
  backends?: readonly string[];
  defect: string;
}

export const KNOWN_DEFECTS: readonly KnownDefect[] = [];

/** The known defect a (writer, feature, backend) case shows, if any. */
export function knownDefect(writer: string, feature: string, backend: string): string | undefined {
  return KNOWN_DEFECTS.find((k) => k.feature === feature && (!k.writers || k.writers.test(writer)) && (!k.backends || k.backends.includes(backend)))?.defect;
}
