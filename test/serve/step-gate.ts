/**
 * A gate in the build for the in-process server tests: SyncOptions.beforeStep
 * awaits it before each publish step ('shallow', 'files', 'history'), so a test
 * can hold a sync between steps and look at what resolve answers, without timing.
 */
export type Step = 'shallow' | 'files' | 'history';

export class StepGate {
  readonly #shut = new Map<Step, { opened: Promise<void>; open: () => void }>();
  readonly #waiters: Array<{ step: Step; arrived: () => void }> = [];

  shut(step: Step): void {
    if (this.#shut.has(step)) return;
    let open!: () => void;
    const opened = new Promise<void>((r) => (open = r));
    this.#shut.set(step, { opened, open });
  }

  open(step: Step): void {
    this.#shut.get(step)?.open();
    this.#shut.delete(step);
  }

  /** Resolves when a sync arrives at `step` (while it is shut, it waits there). */
  reached(step: Step): Promise<void> {
    return new Promise((arrived) => this.#waiters.push({ step, arrived }));
  }

  /** The hook to pass as buildOptions.beforeStep. */
  readonly hook = async (step: Step): Promise<void> => {
    for (let i = this.#waiters.length - 1; i >= 0; i--) {
      if (this.#waiters[i]!.step === step) this.#waiters.splice(i, 1)[0]!.arrived();
    }
    const gate = this.#shut.get(step);
    if (gate) await gate.opened;
  };
}
