import { useEffect, useRef, useState, type KeyboardEvent, type ReactNode } from 'react';
import { fixed, micros } from '../data/format';
import { useKillState, useKillSwitch, useUi } from '../data/hooks';

/**
 * The global kill switch: always in the top bar. Kill -> confirm (Enter confirms, Escape
 * cancels) -> token prompt if this tab has none -> POST /api/kill -> the engine's
 * acknowledgement and its latency -> latched KILLED. Re-arm is a separate button with its own
 * confirm.
 */
export function KillSwitch() {
  const k = useKillSwitch();
  const st = useKillState();
  const ui = useUi();
  const killBtn = useRef<HTMLButtonElement>(null);
  const rearmBtn = useRef<HTMLButtonElement>(null);
  const { phase } = st;
  const latched = phase === 'killed';

  // focus goes back to the button that opened a dialog
  const prevPhase = useRef(phase);
  useEffect(() => {
    const was = prevPhase.current;
    prevPhase.current = phase;
    const fromDialog = was === 'confirm-kill' || was === 'confirm-rearm' || was === 'need-token';
    if (!fromDialog || phase === 'need-token' || phase.startsWith('confirm')) return;
    if (phase === 'killed' || phase === 'unacknowledged') rearmBtn.current?.focus();
    else killBtn.current?.focus();
  }, [phase]);

  const ack = st.ack;
  const busy = phase === 'sending' || phase === 'rearming';

  return (
    <div className="killswitch" data-phase={phase}>
      {latched || phase === 'unacknowledged' || phase === 'rearming' || phase === 'confirm-rearm' ? (
        <div className="kill-latched" role="status" aria-live="assertive">
          <span className="kill-state">
            {phase === 'unacknowledged' ? '⚠ KILL SENT — NOT ACKNOWLEDGED' : '✕ KILLED'}
          </span>
          <span className="kill-detail">
            {ack && ack.acknowledged && (
              <>
                engine ack {micros(ack.engine_ack_us)} ·{' '}
                {ack.cancels_sent
                  ? `cancels sent ${micros(ack.cancels_sent_us)}`
                  : ui.killAckLatencyUs !== null
                    ? `cancels sent ${micros(ui.killAckLatencyUs)}`
                    : 'cancels pending'}{' '}
                · monitor {fixed(ack.monitor_ms, 1)} ms · round trip{' '}
                {st.roundTripMs === null ? '—' : `${fixed(st.roundTripMs, 0)} ms`}
              </>
            )}
            {!ack && st.killedElsewhere && `${ui.killSource ?? 'engine'} reports KILLED (not from this cockpit)`}
            {phase === 'unacknowledged' && ' the kill word is set; the engine has not confirmed'}
          </span>
          {phase === 'unacknowledged' && (
            <button type="button" className="btn kill" ref={killBtn} onClick={() => k.requestKill()}>
              Kill again…
            </button>
          )}
          <button
            type="button"
            className="btn rearm"
            ref={rearmBtn}
            disabled={busy}
            aria-haspopup="dialog"
            onClick={() => k.requestRearm()}
          >
            {phase === 'rearming' ? 'Re-arming…' : 'Re-arm…'}
          </button>
        </div>
      ) : (
        <button
          type="button"
          className="btn kill big"
          ref={killBtn}
          disabled={busy}
          aria-haspopup="dialog"
          onClick={() => k.requestKill()}
        >
          {phase === 'sending' ? 'KILLING…' : '■ KILL'}
        </button>
      )}
      {st.error && (
        <span className="kill-error" role="alert">
          {st.error}
        </span>
      )}
      {phase === 'confirm-kill' && (
        <Confirm
          title="Kill the engine?"
          confirmLabel="KILL NOW"
          danger
          onConfirm={() => void k.confirmKill()}
          onCancel={() => k.cancel()}
        >
          Every write is refused from the moment Execution sees the flag, and resting orders are
          cancelled under the broker's limits. It stays KILLED until someone re-arms it.
          {ui.engineStatus !== 'LIVE' && (
            <strong className="warn-text"> The engine is {ui.engineStatus ?? 'unknown'}.</strong>
          )}
        </Confirm>
      )}
      {phase === 'confirm-rearm' && (
        <Confirm
          title="Re-arm the engine?"
          confirmLabel="Re-arm"
          onConfirm={() => void k.confirmRearm()}
          onCancel={() => k.cancel()}
        >
          This clears the kill word and sends REARM; trading may resume. The engine refuses if it is
          not safe.
        </Confirm>
      )}
      {phase === 'need-token' && (
        <TokenPrompt
          rejected={st.tokenRejected}
          onSubmit={(t) => void k.provideToken(t)}
          onCancel={() => k.cancel()}
        />
      )}
    </div>
  );
}

function Dialog({
  title,
  children,
  onKeyDown,
  labelId,
}: {
  title: string;
  children: ReactNode;
  onKeyDown: (e: KeyboardEvent<HTMLDivElement>) => void;
  labelId: string;
}) {
  const box = useRef<HTMLDivElement>(null);
  // keep Tab inside the dialog
  const trap = (e: KeyboardEvent<HTMLDivElement>) => {
    if (e.key === 'Tab' && box.current) {
      const f = box.current.querySelectorAll<HTMLElement>('button, input');
      if (f.length) {
        const first = f[0];
        const last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) {
          e.preventDefault();
          last.focus();
        } else if (!e.shiftKey && document.activeElement === last) {
          e.preventDefault();
          first.focus();
        }
      }
    }
    onKeyDown(e);
  };
  return (
    <div className="backdrop">
      <div
        className="dialog"
        role="alertdialog"
        aria-modal="true"
        aria-labelledby={labelId}
        ref={box}
        onKeyDown={trap}
      >
        <h2 id={labelId}>{title}</h2>
        {children}
      </div>
    </div>
  );
}

function Confirm({
  title,
  confirmLabel,
  danger,
  children,
  onConfirm,
  onCancel,
}: {
  title: string;
  confirmLabel: string;
  danger?: boolean;
  children: ReactNode;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ok = useRef<HTMLButtonElement>(null);
  useEffect(() => ok.current?.focus(), []);
  return (
    <Dialog
      title={title}
      labelId="confirm-title"
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          onCancel();
        } else if (e.key === 'Enter' && (e.target as HTMLElement).dataset.role !== 'cancel') {
          e.preventDefault();
          onConfirm();
        }
      }}
    >
      <p>{children}</p>
      <p className="muted small">Enter confirms · Escape cancels</p>
      <div className="dialog-buttons">
        <button type="button" className={`btn ${danger ? 'kill' : 'rearm'}`} ref={ok} onClick={onConfirm}>
          {confirmLabel}
        </button>
        <button type="button" className="btn" data-role="cancel" onClick={onCancel}>
          Cancel
        </button>
      </div>
    </Dialog>
  );
}

function TokenPrompt({
  rejected,
  onSubmit,
  onCancel,
}: {
  rejected: boolean;
  onSubmit: (token: string) => void;
  onCancel: () => void;
}) {
  const [value, setValue] = useState('');
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <Dialog
      title="Monitor token"
      labelId="token-title"
      onKeyDown={(e) => {
        if (e.key === 'Escape') {
          e.preventDefault();
          onCancel();
        }
      }}
    >
      <form
        onSubmit={(e) => {
          e.preventDefault();
          if (value.trim()) onSubmit(value);
        }}
      >
        {rejected && (
          <p className="kill-error" role="alert">
            The monitor rejected that token (401). Enter it again.
          </p>
        )}
        <label htmlFor="token-input">
          The kill switch needs the monitor's bearer token: printed by <code>vajra monitor</code> at
          start, and in <code>&lt;run-dir&gt;/monitor.token</code>. Kept for this tab only.
        </label>
        <input
          id="token-input"
          ref={input}
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={value}
          onChange={(e) => setValue(e.target.value)}
        />
        <div className="dialog-buttons">
          <button type="submit" className="btn kill" disabled={!value.trim()}>
            Use token
          </button>
          <button type="button" className="btn" onClick={onCancel}>
            Cancel
          </button>
        </div>
      </form>
    </Dialog>
  );
}
