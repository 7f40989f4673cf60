// The lab fleet the sweep tests share: a /20 and a /116 on port 80, with a
// /24 (and a /120) dropped (filtered) and another rejected (unreachable).
import { FleetSpec } from '../../src/fleet/fleet';

export const lab20x2 = (tag: string): FleetSpec => ({
  tag,
  v4: '198.18.0.0/20',
  v6: '2001:2::/116',
  open: [80],
  drop: ['198.18.4.0/24', '2001:2::400/120'],
  reject: ['198.18.5.0/24', '2001:2::500/120'],
});
