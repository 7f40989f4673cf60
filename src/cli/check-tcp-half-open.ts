#!/usr/bin/env node
// check_tcp_half_open: the Nagios plugin name of `halfopen check`, for
// /usr/lib/nagios/plugins, farmguardian and keepalived MISC_CHECK. Same
// arguments: HOST PORT, or -H HOST -p PORT [-t SECONDS] [-4|-6] [--json].
import { run } from './check';

run(process.argv.slice(2));
