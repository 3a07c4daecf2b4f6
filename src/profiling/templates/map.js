/* The settlement map: choropleths, hazard overlays, hexagons, legend and search.
   Every name and figure comes from window.PROFILING_MAP and is written with textContent:
   nothing from the data is ever parsed as HTML. */
function profilingMap(map, D) {
  "use strict";
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  // the words the script writes itself, in the run's language (English: the message itself)
  var T = D.text || {};
  function say(msg, values) {
    var s = Object.prototype.hasOwnProperty.call(T, msg) ? T[msg] : msg;
    Object.keys(values || {}).forEach(function (k) {
      s = s.split("%(" + k + ")s").join(String(values[k]));
    });
    return s;
  }
  var byKey = {}, base = {}, overlays = {}, members = {}, active = null;
  // a phone's width: the layer list folds, popups and legends narrow
  function narrowMap() { return map.getContainer().clientWidth < 600; }
  D.layers.forEach(function (L0) { byKey[L0.key] = L0; });

  function popupContent(p) {
    var box = el("div", "pm-popup");
    box.appendChild(el("h3", null, p.name));
    var t = el("table");
    p.popup.forEach(function (r) {
      var tr = el("tr");
      tr.appendChild(el("th", null, r[0]));
      tr.appendChild(el("td", null, r[1]));
      t.appendChild(tr);
    });
    box.appendChild(t);
    var a = el("a", "pm-atlas", say("Open the settlement profile"));
    a.setAttribute("href", p.href);
    a.setAttribute("target", "_blank");
    box.appendChild(a);
    return box;
  }
  function tooltipContent(p, key) {
    var box = el("div", "pm-tooltip");
    box.appendChild(el("strong", null, p.name));
    box.appendChild(el("div", null, byKey[key].label + ": " + p.fig[key]));
    box.appendChild(el("div", null, p.popup[0][0] + ": " + p.popup[0][1]));
    return box;
  }

  // Each choropleth is built the first time it is shown: only the visible one costs time.
  function build(spec, group) {
    members[spec.key] = {};
    var layer = L.geoJSON(D.settlements, {
      style: function (f) {
        var c = f.properties.cls[spec.key];
        return {color: "#444", weight: 1, fillOpacity: 0.75,
                fillColor: c >= 0 ? spec.colours[c] : D.no_data,
                className: "pm-settlement pm-class-" + c};
      },
      onEachFeature: function (f, lyr) {
        members[spec.key][f.properties.id] = lyr;
        lyr.bindTooltip(function () { return tooltipContent(f.properties, spec.key); },
                        {sticky: true});
        lyr.bindPopup(function () { return popupContent(f.properties); },
                      narrowMap() ? {maxWidth: 250, autoPanPaddingTopLeft: L.point(10, 130)}
                                  : {maxWidth: 320, autoPanPaddingTopLeft: L.point(60, 200)});
      }
    });
    group.addLayer(layer);
  }
  D.layers.forEach(function (spec) {
    var group = L.featureGroup();
    group._pmKey = spec.key;
    group.on("add", function () {
      if (!members[spec.key]) { build(spec, group); }
    });
    base[esc(spec.label)] = group;
  });

  if (D.basemap) {
    L.tileLayer(D.basemap, {attribution: esc(D.attribution || ""), maxZoom: 19}).addTo(map);
  }
  // a basemap from a local archive, its tiles copied beside the page: no network needed
  if (D.basemap_local) {
    var B = D.basemap_local;
    L.tileLayer(B.url, {minNativeZoom: B.minZoom, maxNativeZoom: B.maxNativeZoom, maxZoom: 19,
                        bounds: B.bounds, attribution: esc(B.attribution || ""),
                        className: "pm-basemap"}).addTo(map);
  }
  // Leaflet's layer control writes its labels as HTML: every label goes through esc().
  function esc(text) {
    var d = document.createElement("div");
    d.textContent = String(text);
    return d.innerHTML;
  }
  // Hazards are drawn above the settlement fills (their own pane, which lets clicks through
  // to the settlements), so that their colours are not mixed with the fills' colours.
  var pane = map.createPane("pmHazard");
  pane.style.zIndex = 450;
  pane.style.pointerEvents = "none";
  var hazardLayers = {};
  D.hazards.forEach(function (h, i) {
    var lyr = L.imageOverlay(h.image, h.bounds, {opacity: 0.85, interactive: false,
                                                 pane: "pmHazard"});
    lyr._pmHazard = h;
    hazardLayers[i] = lyr;
    overlays[esc(say("Hazard: %(name)s", {name: h.name}))] = lyr;
  });
  var hexLayer = null;
  if (D.hexagons.length) {
    hexLayer = L.layerGroup();
    D.hexagons.forEach(function (c) {
      var ll = c.xy.map(function (p) { return L.CRS.EPSG3857.unproject(L.point(p[0], p[1])); });
      var HL = D.hexagon_legend;
      var poly = L.polygon(ll, {color: "#333", weight: 1,
                                fillColor: c.cls >= 0 ? HL.colours[c.cls] : D.no_data,
                                fillOpacity: 0.7, className: "pm-hexagon pm-hex-class-" + c.cls});
      poly.bindTooltip(function () {
        var b = el("div", "pm-tooltip");
        b.appendChild(el("div", null, say("Households: %(n)s", {n: c.households})));
        b.appendChild(el("div", null, say("Slum households: %(share)s", {share: c.slum})));
        return b;
      });
      hexLayer.addLayer(poly);
    });
    overlays[esc(say("Households in hexagons (cells under %(k)s households left out)",
                   {k: D.k}))] = hexLayer;
  }

  // The settlements the CUF portfolio funds: a heavy outline above every choropleth, which
  // lets the pointer through to the settlement under it
  var fundedLayer = null;
  if (D.portfolio) {
    var fpane = map.createPane("pmFunded");
    fpane.style.zIndex = 440;
    fpane.style.pointerEvents = "none";
    fundedLayer = L.geoJSON(D.settlements, {
      pane: "pmFunded", interactive: false,
      filter: function (f) { return f.properties.funded; },
      style: function () {
        return {color: "#111", weight: 3.5, fill: false, className: "pm-funded"};
      }
    });
    overlays[esc(say("Funded by the CUF portfolio"))] = fundedLayer;
    fundedLayer.addTo(map);
  }

  // Legend
  var legend = L.control({position: "bottomright"});
  legend.onAdd = function () {
    this._div = el("div", "pm-legend leaflet-bar");
    L.DomEvent.disableClickPropagation(this._div);
    return this._div;
  };
  // one row of a legend: a swatch of colour and its words
  function swatchRow(d, colour, text, cls) {
    var row = el("div", "pm-legend-row" + (cls ? " " + cls : ""));
    var sw = el("span", "pm-swatch");
    sw.style.background = colour;
    row.appendChild(sw);
    row.appendChild(el("span", null, text));
    d.appendChild(row);
  }
  function drawLegend() {
    var d = legend._div;
    if (!d) { return; }
    d.textContent = "";
    if (active) {
      var spec = byKey[active];
      d.appendChild(el("div", "pm-legend-title", spec.label));
      d.appendChild(el("div", "pm-legend-method", say("Classes: %(method)s",
                                                    {method: spec.method})));
      spec.colours.forEach(function (c, i) { swatchRow(d, c, spec.labels[i]); });
      // a figure of the land is never suppressed: only "no data" (not modelled) applies
      swatchRow(d, D.no_data, spec.land ? say("no data (not modelled)")
                                        : say("no data, or %(suppressed)s",
                                            {suppressed: D.suppressed}));
    }
    if (fundedLayer && map.hasLayer(fundedLayer)) {
      var row = el("div", "pm-legend-row pm-funded-legend");
      var sw = el("span", "pm-swatch pm-swatch-outline");
      row.appendChild(sw);
      row.appendChild(el("span", null, say("funded by the CUF portfolio")));
      d.appendChild(row);
    }
    if (hexLayer && map.hasLayer(hexLayer)) {
      var HL = D.hexagon_legend;
      d.appendChild(el("div", "pm-legend-title", say("Households per hexagon")));
      d.appendChild(el("div", "pm-legend-method", say("Classes: %(method)s",
                                                    {method: HL.method})));
      HL.colours.forEach(function (c, i) { swatchRow(d, c, HL.labels[i], "pm-hex-legend"); });
    }
    Object.keys(hazardLayers).forEach(function (name) {
      var lyr = hazardLayers[name];
      if (!map.hasLayer(lyr)) { return; }
      var h = lyr._pmHazard;
      d.appendChild(el("div", "pm-legend-title", say("Hazard: %(name)s, %(unit)s",
                                                   {name: h.name, unit: h.unit})));
      h.legend.forEach(function (r) { swatchRow(d, r[0], r[1]); });
      d.appendChild(el("div", "pm-legend-method", say("Source: %(source)s", {
        source: h.source + (h.scenario ? ", " + h.scenario : "")})));
    });
  }
  legend.addTo(map);

  map.on("baselayerchange", function (e) { active = e.layer._pmKey; drawLegend(); });
  map.on("overlayadd overlayremove", drawLegend);
  var first = D.layers.length ? base[esc(D.layers[0].label)] : null;
  if (first) { first.addTo(map); active = first._pmKey; }
  // on a phone the layer list folds into its button, so that it covers neither the search
  // box nor the zoom buttons
  L.control.layers(base, overlays, {collapsed: narrowMap(), position: "topright"}).addTo(map);
  drawLegend();

  // The title block: what the map shows, when the enumeration was made, from what
  if (D.about) {
    var about = L.control({position: "bottomleft"});
    about.onAdd = function () {
      var box = el("div", "pm-about");
      box.id = "pm-about";
      L.DomEvent.disableClickPropagation(box);
      box.appendChild(el("div", "pm-about-title", D.about.title));
      if (D.about.dates) {
        box.appendChild(el("div", "pm-about-dates", say("Enumerated from %(first)s to %(last)s",
          {first: D.about.dates[0], last: D.about.dates[1]})));
      }
      if (D.about.sources.length) {
        var src = el("div", "pm-about-sources", say("Sources: "));
        D.about.sources.forEach(function (s, i) {
          src.appendChild(document.createTextNode((i ? "; " : "") + s[0] + ": " + s[1]));
        });
        box.appendChild(src);
      }
      box.appendChild(el("div", "pm-about-k", D.about.k));
      return box;
    };
    about.addTo(map);
  }

  // The portfolio in figures: folded to one line until it is opened
  if (D.portfolio) {
    var P = D.portfolio;
    var panel = L.control({position: "bottomleft"});
    panel.onAdd = function () {
      var box = el("details", "pm-portfolio");
      box.id = "pm-portfolio";
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      box.appendChild(el("summary", null, say("CUF portfolio: %(total)s in %(n)s settlements",
                                            {total: P.total, n: P.settlements})));
      box.appendChild(el("div", "pm-portfolio-persons", say("Persons served: %(n)s",
                                                          {n: P.persons})));
      function table(head, rows, id) {
        var t = el("table");
        t.id = id;
        var tr = el("tr");
        head.forEach(function (h) { tr.appendChild(el("th", null, h)); });
        t.appendChild(tr);
        rows.forEach(function (r) {
          var row = el("tr");
          r.forEach(function (c) { row.appendChild(el("td", null, c)); });
          t.appendChild(row);
        });
        box.appendChild(t);
      }
      table([say("Intervention"), say("Units"), say("Cost"), say("Settlements")], P.interventions,
            "pm-portfolio-interventions");
      table([say("Settlement"), say("Rank"), say("Cost")], P.funded, "pm-portfolio-settlements");
      if (P.more) {
        box.appendChild(el("div", "pm-portfolio-more",
                           say("and %(n)s more settlements (cuf_portfolio.csv)", {n: P.more})));
      }
      return box;
    };
    panel.addTo(map);
  }

  // Search by settlement name
  var search = L.control({position: "topleft"});
  search.onAdd = function () {
    var box = el("div", "pm-search leaflet-bar");
    L.DomEvent.disableClickPropagation(box);
    var input = el("input");
    input.type = "search";
    input.placeholder = say("Find a settlement");
    input.setAttribute("aria-label", say("Find a settlement by name"));
    input.setAttribute("list", "pm-names");
    var list = el("datalist");
    list.id = "pm-names";
    D.settlements.features.forEach(function (f) {
      var o = el("option");
      o.value = f.properties.name;
      list.appendChild(o);
    });
    var msg = el("div", "pm-search-msg");
    function find() {
      var q = input.value.trim().toLowerCase();
      if (!q) { return; }
      var hit = null;
      D.settlements.features.forEach(function (f) {
        var n = f.properties.name.toLowerCase();
        if (!hit && n === q) { hit = f; }
      });
      if (!hit) {
        D.settlements.features.forEach(function (f) {
          if (!hit && f.properties.name.toLowerCase().indexOf(q) >= 0) { hit = f; }
        });
      }
      if (!hit) { msg.textContent = say("No settlement named %(name)s", {name: input.value}); return; }
      msg.textContent = "";
      var lyr = members[active][hit.properties.id];
      // no animation: the popup then opens on the final view and pans itself into sight
      map.fitBounds(lyr.getBounds(), {maxZoom: 17, animate: false});
      lyr.openPopup(lyr.getBounds().getCenter());
    }
    input.addEventListener("keydown", function (e) { if (e.key === "Enter") { find(); } });
    input.addEventListener("change", find);
    box.appendChild(input);
    box.appendChild(list);
    box.appendChild(msg);
    return box;
  };
  search.addTo(map);
}
