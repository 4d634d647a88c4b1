import type { ReactNode } from 'react';
import { useUi } from '../data/hooks';
import type { DataChannel } from '../data/protocol';
import { clock } from '../data/format';

export interface PanelProps {
  id: string;
  title: string;
  channels: DataChannel[];
  className?: string;
  children: ReactNode;
}

/**
 * A panel's frame. Greyed, with the reason and since when, whenever the data is not live
 * (socket down or silent for 1.5 s, engine DEAD/NONE, or one of its channels unreadable).
 */
export function Panel({ id, title, channels, className, children }: PanelProps) {
  const ui = useUi();
  const missing = channels.filter((c) => ui.unavailable.includes(c));
  const stale = ui.stale || missing.length > 0;
  const why = ui.stale
    ? `${ui.staleReason}${ui.staleSince !== null ? ` · since ${clock(ui.staleSince)}` : ''}`
    : `${missing.join(', ')} unreadable this tick`;
  return (
    <section
      className={`panel ${className ?? ''}`}
      data-stale={stale ? 'true' : 'false'}
      aria-labelledby={`${id}-title`}
      id={id}
    >
      <header className="panel-head">
        <h2 id={`${id}-title`}>{title}</h2>
        {stale && (
          <span className="stale-tag" role="status">
            STALE · {why}
          </span>
        )}
      </header>
      <div className="panel-body">{children}</div>
    </section>
  );
}
