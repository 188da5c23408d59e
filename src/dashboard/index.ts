export { startDashboard, type DashboardOptions, type DashboardServer } from './server.js';
export { loadPanels, seriesSql, chooseStep, panelFields, readPanel, PANELS_DIR, type Panel } from './panels.js';
export { ensureReader, type ReaderSecret } from './store.js';
export { liveView, type LiveView, type LivePoint } from './live.js';
export { grafanaExport, grafanaSql, expandMacros, PASSWORD_ENV, ANNOTATIONS_SQL, NODES_SQL, type GrafanaExport, type GrafanaSource } from './grafana.js';
export { grafanaPush, type PushTarget, type PushReport } from './grafana-push.js';
export { dashboardSnapshot } from './snapshot.js';
