// ECharts, tree-shaken to the chart types the insights use. Each chart reports clicks on a
// data point with the point's `drill` cell (see the engine's insights::drill).
import * as echarts from "echarts/core";
import { BarChart, HeatmapChart, LineChart, SankeyChart } from "echarts/charts";
import {
  DataZoomComponent,
  GridComponent,
  LegendComponent,
  TooltipComponent,
  VisualMapComponent,
} from "echarts/components";
import { CanvasRenderer } from "echarts/renderers";

echarts.use([
  BarChart,
  LineChart,
  HeatmapChart,
  SankeyChart,
  GridComponent,
  TooltipComponent,
  LegendComponent,
  VisualMapComponent,
  DataZoomComponent,
  CanvasRenderer,
]);

export type ChartOption = echarts.EChartsCoreOption;

export const PALETTE = ["#1d4ed8", "#ea580c", "#16a34a", "#be185d", "#7c3aed", "#0891b2", "#ca8a04", "#475569"];

/** Mount a chart in `host`; `onPoint` gets the clicked item's `drill` value. */
export function mountChart(host: HTMLElement, option: ChartOption, onPoint?: (drill: string) => void): echarts.ECharts {
  const dark = document.documentElement.dataset.theme === "dark";
  const chart = echarts.init(host, dark ? "dark" : undefined, { renderer: "canvas" });
  chart.setOption({ color: PALETTE, backgroundColor: "transparent", textStyle: { fontFamily: "inherit" }, animationDuration: 250, animationDurationUpdate: 150, ...option });
  if (onPoint) {
    chart.on("click", (p) => {
      const d = (p.data as { drill?: string } | undefined)?.drill;
      if (d) onPoint(d);
    });
  }
  // Follow the host's size; let go of the chart once its screen is gone.
  const ro = new ResizeObserver(() => {
    if (!host.isConnected) {
      ro.disconnect();
      chart.dispose();
      return;
    }
    chart.resize();
  });
  ro.observe(host);
  return chart;
}
