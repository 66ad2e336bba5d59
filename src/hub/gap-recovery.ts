import type { BackplaneGap } from '../backplane/backplane.js';
import type { StockClientRefresh } from '../transport/stock-refresh.js';
import type { Hub } from './hub.js';

/**
 * The backplane is whole again after a gap. Events another node accepted alone, or a failover
 * lost, are in no history: those libraries' positioned clients resync instead of catching up.
 */
export function recoverFromGap(gap: BackplaneGap, hub: Hub, refresh: StockClientRefresh): void {
  if (gap.cutOff === 'this-node') hub.catchUp();
  else hub.resync(gap.libraries, gap.cutOff === 'history-lost' ? 'history-lost' : 'events-not-shared');
  const why =
    gap.cutOff === 'this-node'
      ? "back on the backplane after missing other nodes' events"
      : gap.cutOff === 'history-lost'
        ? 'Redis failed over and lost the newest events of their libraries'
        : `node ${gap.node} was cut off and accepted events alone`;
  refresh.refresh(gap.libraries, why);
}
