"use strict";
// The shared map of every page (Leaflet, served locally from xstatic-leaflet).
//
//   const map = await TocsinMap.create("map", { center: [60.17, 24.94], zoom: 14 });
//
// GET /api/v1/geo/map-config says how: a raster tile layer when the deployment
// configures a tile URL (TOCSIN_TILE_URL); otherwise streets, buildings and water
// drawn from the imported OpenStreetMap data itself (GET /api/v1/geo/basemap?bbox=...),
// since a closed police network has no tile server. It also gives the bounds and
// centre of the imported area: a map without a centre of its own, or with one
// outside that area, opens on the area's centre. The config stays on map.config.
const TocsinMap = (function () {
  const STYLE = {
    water: { color: "#1f4e79", weight: 0, fillColor: "#1f4e79", fillOpacity: 0.9 },
    park: { color: "#1e3b2c", weight: 0, fillColor: "#1e3b2c", fillOpacity: 0.8 },
    building: { color: "#3a4756", weight: 0.5, fillColor: "#2c3846", fillOpacity: 0.9 },
    road: { color: "#6b7b8c", weight: 2 },
    major: { color: "#9fb0c2", weight: 4 },
    rail: { color: "#55606b", weight: 1.5, dashArray: "4 4" },
  };

  function styleOf(feature) {
    const p = feature.properties || {};
    return STYLE[p.style || p.layer] || STYLE.road;
  }

  async function create(target, opts = {}) {
    const cfg = (await Tocsin.api("GET", "/api/v1/geo/map-config").catch(() => null)) || {};
    const area = cfg.bounds ? L.latLngBounds(cfg.bounds).pad(0.5) : null;
    const center = opts.center && (!area || area.contains(opts.center))
      ? opts.center : cfg.center || opts.center || [60.17, 24.94];
    const map = L.map(target, { preferCanvas: true, zoomControl: true })
      .setView(center, opts.zoom || cfg.zoom || 14);
    map.config = cfg;
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.attribution || "" }).addTo(map);
    } else {
      const base = L.geoJSON(null, { style: styleOf, interactive: false }).addTo(map);
      let pending = null;
      const load = async () => {
        const b = map.getBounds();
        const bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(5)).join(",");
        const key = bbox + "/" + map.getZoom();
        if (pending === key) return;
        pending = key;
        try {
          const fc = await Tocsin.api("GET", `/api/v1/geo/basemap?bbox=${bbox}&zoom=${map.getZoom()}`);
          if (pending !== key) return;
          base.clearLayers();
          base.addData(fc);
          base.bringToBack();
        } catch (e) { /* basemap unavailable: the operational layers still work */ }
      };
      map.on("moveend", load);
      load();
      map.basemap = base;
    }
    L.control.scale({ imperial: false }).addTo(map);
    return map;
  }

  // A round marker coloured by state, for units and incidents.
  function dot(latlng, color, opts = {}) {
    return L.circleMarker(latlng, Object.assign({ radius: 7, color: "#0b1117", weight: 2,
                                                  fillColor: color, fillOpacity: 1 }, opts));
  }

  return { create, dot, STYLE };
})();
