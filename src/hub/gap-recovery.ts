import type { BackplaneGap } from '../backplane/backplane.js';
import type { StockClientRefresh } from '../transport/stock-refresh.js';
import type { Hub } from './hub.js';

/**
 * What this node does when its backplane is whole again after a gap. Positioned clients catch up
 * from the history; events another node accepted alone are in no history, nor are those a
 * failover lost, so those libraries' positioned clients start over. Stock desktop clients are
 * sent to re-read their state.
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
