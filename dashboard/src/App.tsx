import { ConnectionBadge } from './panels/ConnectionBadge';
import { ExecutionPanel } from './panels/ExecutionPanel';
import { KillSwitch } from './panels/KillSwitch';
import { LatencyPanel } from './panels/LatencyPanel';
import { OraclePanel } from './panels/OraclePanel';
import { SentinelPanel } from './panels/SentinelPanel';
import { SonarPanel } from './panels/SonarPanel';

export function App() {
  return (
    <>
      <a className="skip" href="#sentinel">
        Skip to panels
      </a>
      <header className="topbar">
        <h1 className="brand">
          VAJRA <span className="muted">cockpit</span>
        </h1>
        <ConnectionBadge />
        <KillSwitch />
      </header>
      <main className="grid">
        <SentinelPanel />
        <SonarPanel />
        <ExecutionPanel />
        <OraclePanel />
        <LatencyPanel />
      </main>
    </>
  );
}
