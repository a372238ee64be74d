// Languages and number/date formatting. Times are shown on the meter's own calendar
// (Central European time), the calendar the store's hours, days and months follow.

export const TZ = 'Europe/Brussels';

const en = {
  now: 'Now', history: 'History', capacity: 'Capacity', baseload: 'Base load', meter: 'Meter', prices: 'Prices',
  importing: 'Taking from the grid', exporting: 'Delivering to the grid', idle: 'Balanced',
  net_power: 'Net power', electricity: 'Electricity', avg_power: 'Average power', phases: 'Phases', phase: 'Phase', power: 'Power', voltage: 'Voltage', current: 'Current',
  last_15: 'Last 15 minutes', today: 'Today', import: 'Import', export: 'Export', gas: 'Gas', water: 'Water', heat: 'Heat',
  cost: 'Cost', net_cost: 'Net cost', fixed: 'Fixed charges', total: 'Total', tariff: 'Tariff',
  no_meter: 'No meter has sent a reading yet. meterkast is waiting for its source; this page fills in by itself.',
  no_phases: 'This meter does not report per-phase values.',
  no_gas: 'No gas meter is connected to this meter.',
  no_data: 'No data for this period.',
  disconnected: 'Source {name} is disconnected: {note}',
  live_lost: 'The live connection was lost; reconnecting…',
  waiting_live: 'Waiting for the next reading…',
  stale: 'The last reading is {age} old.',
  day: 'Day', month: 'Month', year: 'Year', prev: 'Previous', next: 'Next', quarter_hours: 'Quarter-hours',
  compare: 'Compared with {period}', previous_period: 'previous period', change: 'Change',
  running_avg: 'This quarter-hour so far', projected: 'Projected at {time}',
  month_peak: 'Peak of {month}', peak_link: 'Open that day',
  months_13: 'Monthly peaks, last 13 months', rolling: 'Rolling 12-month average', billed: 'billed at least {min}',
  peak_cost: 'Capacity cost per year', meter_says: 'The meter reports', computed: 'meterkast computed',
  meter_peak: 'Month peak (1.6.0)', meter_history: 'Peak history (98.1.0)', meter_avg: 'Current average (1.4.0)',
  no_capacity_regs: 'This meter does not report capacity-tariff registers (Belgian meters do); the values above are computed from its energy registers.',
  per_night: 'Lowest quarter-hour each night (00:00–06:00)', typical: 'Typical base load', per_year: 'per year',
  baseload_help: 'What keeps running while everyone sleeps: fridge, freezer, routers, standby.',
  no_nights: 'Not enough night-time data yet: base load needs most of a night (00:00–06:00).',
  dialect: 'Dialect', equipment: 'Equipment id', submeters: 'Sub-meters', sources: 'Sources', state: 'State',
  connected: 'connected', not_connected: 'disconnected', accepted: 'Accepted', rejected: 'Rejected',
  first_seen: 'First seen', last_seen: 'Last seen', version: 'Version', last_telegram: 'Last raw telegram', none: 'none',
  channel: 'Channel', type: 'Type', source: 'Source',
  currency: 'Currency', import_price: 'Import per kWh', export_price: 'Export per kWh', gas_price: 'Gas per m³',
  water_price: 'Water per m³', heat_price: 'Heat per GJ', daily: 'Fixed per day',
  capacity_price: 'Capacity tariff per kW per year', capacity_min: 'Capacity minimum (kW)',
  tariffs_34: 'Tariffs 3 and 4', save: 'Save', saved: 'Saved.', prices_help: 'Prices set here are kept in the database and win over the config file.',
  error: 'Could not load: {msg}', theme: 'Theme', language: 'Language', select_meter: 'Meter',
  identify: 'Identify: a HomeWizard client (such as Home Assistant) asked which device this is. It is this one.',
};

const nl = {
  now: 'Nu', history: 'Historie', capacity: 'Capaciteit', baseload: 'Sluipverbruik', meter: 'Meter', prices: 'Prijzen',
  importing: 'Afname van het net', exporting: 'Teruglevering aan het net', idle: 'In balans',
  net_power: 'Nettovermogen', electricity: 'Elektriciteit', avg_power: 'Gemiddeld vermogen', phases: 'Fasen', phase: 'Fase', power: 'Vermogen', voltage: 'Spanning', current: 'Stroom',
  last_15: 'Laatste 15 minuten', today: 'Vandaag', import: 'Afname', export: 'Teruglevering', gas: 'Gas', water: 'Water', heat: 'Warmte',
  cost: 'Kosten', net_cost: 'Nettokosten', fixed: 'Vaste kosten', total: 'Totaal', tariff: 'Tarief',
  no_meter: 'Er is nog geen meting binnen. meterkast wacht op de bron; deze pagina vult zich vanzelf.',
  no_phases: 'Deze meter geeft geen waarden per fase.',
  no_gas: 'Er is geen gasmeter op deze meter aangesloten.',
  no_data: 'Geen gegevens voor deze periode.',
  disconnected: 'Bron {name} is niet verbonden: {note}',
  live_lost: 'De live-verbinding is verbroken; opnieuw verbinden…',
  waiting_live: 'Wachten op de volgende meting…',
  stale: 'De laatste meting is {age} oud.',
  day: 'Dag', month: 'Maand', year: 'Jaar', prev: 'Vorige', next: 'Volgende', quarter_hours: 'Kwartieren',
  compare: 'Vergeleken met {period}', previous_period: 'vorige periode', change: 'Verschil',
  running_avg: 'Dit kwartier tot nu toe', projected: 'Verwacht om {time}',
  month_peak: 'Piek van {month}', peak_link: 'Open die dag',
  months_13: 'Maandpieken, laatste 13 maanden', rolling: 'Voortschrijdend 12-maandsgemiddelde', billed: 'gefactureerd minimaal {min}',
  peak_cost: 'Capaciteitskosten per jaar', meter_says: 'De meter meldt', computed: 'meterkast berekende',
  meter_peak: 'Maandpiek (1.6.0)', meter_history: 'Piekhistorie (98.1.0)', meter_avg: 'Huidig gemiddelde (1.4.0)',
  no_capacity_regs: 'Deze meter meldt geen capaciteitstariefregisters (Belgische meters wel); de waarden hierboven zijn berekend uit de energieregisters.',
  per_night: 'Laagste kwartier per nacht (00:00–06:00)', typical: 'Gewoon sluipverbruik', per_year: 'per jaar',
  baseload_help: 'Wat doorloopt terwijl iedereen slaapt: koelkast, vriezer, routers, standby.',
  no_nights: 'Nog niet genoeg nachtgegevens: sluipverbruik vraagt het grootste deel van een nacht (00:00–06:00).',
  dialect: 'Dialect', equipment: 'Meternummer', submeters: 'Submeters', sources: 'Bronnen', state: 'Status',
  connected: 'verbonden', not_connected: 'niet verbonden', accepted: 'Geaccepteerd', rejected: 'Geweigerd',
  first_seen: 'Eerst gezien', last_seen: 'Laatst gezien', version: 'Versie', last_telegram: 'Laatste ruwe telegram', none: 'geen',
  channel: 'Kanaal', type: 'Soort', source: 'Bron',
  currency: 'Valuta', import_price: 'Afname per kWh', export_price: 'Teruglevering per kWh', gas_price: 'Gas per m³',
  water_price: 'Water per m³', heat_price: 'Warmte per GJ', daily: 'Vast per dag',
  capacity_price: 'Capaciteitstarief per kW per jaar', capacity_min: 'Capaciteitsminimum (kW)',
  tariffs_34: 'Tarieven 3 en 4', save: 'Opslaan', saved: 'Opgeslagen.', prices_help: 'Prijzen die je hier instelt worden in de database bewaard en gaan voor op het configuratiebestand.',
  error: 'Laden mislukt: {msg}', theme: 'Thema', language: 'Taal', select_meter: 'Meter',
  identify: 'Identificeren: een HomeWizard-client (zoals Home Assistant) vroeg welk apparaat dit is. Het is dit apparaat.',
};

const de = {
  ...en,
  now: 'Jetzt', history: 'Verlauf', capacity: 'Leistung', baseload: 'Grundlast', meter: 'Zähler', prices: 'Preise',
  importing: 'Bezug aus dem Netz', exporting: 'Einspeisung ins Netz', idle: 'Ausgeglichen',
  net_power: 'Nettoleistung', electricity: 'Strom', avg_power: 'Mittlere Leistung', phases: 'Phasen', phase: 'Phase', power: 'Leistung', voltage: 'Spannung', current: 'Strom',
  last_15: 'Letzte 15 Minuten', today: 'Heute', import: 'Bezug', export: 'Einspeisung', gas: 'Gas', water: 'Wasser', heat: 'Wärme',
  cost: 'Kosten', net_cost: 'Nettokosten', fixed: 'Grundgebühr', total: 'Summe', tariff: 'Tarif',
  no_meter: 'Noch kein Zähler hat Daten gesendet. meterkast wartet auf die Quelle; diese Seite füllt sich von selbst.',
  no_phases: 'Dieser Zähler meldet keine Werte pro Phase.', no_gas: 'An diesem Zähler ist kein Gaszähler angeschlossen.',
  no_data: 'Keine Daten für diesen Zeitraum.', day: 'Tag', month: 'Monat', year: 'Jahr', prev: 'Zurück', next: 'Weiter',
  typical: 'Typische Grundlast', per_year: 'pro Jahr', save: 'Speichern', saved: 'Gespeichert.', language: 'Sprache',
  disconnected: 'Quelle {name} ist nicht verbunden: {note}', live_lost: 'Die Live-Verbindung ist unterbrochen; verbinde neu…',
  waiting_live: 'Warte auf die nächste Messung…', stale: 'Die letzte Messung ist {age} alt.', quarter_hours: 'Viertelstunden',
  compare: 'Verglichen mit {period}', previous_period: 'vorigem Zeitraum', change: 'Änderung',
  running_avg: 'Diese Viertelstunde bisher', projected: 'Erwartet um {time}', month_peak: 'Spitze im {month}', peak_link: 'Diesen Tag öffnen',
  months_13: 'Monatsspitzen, letzte 13 Monate', rolling: 'Gleitender 12-Monats-Durchschnitt', billed: 'mindestens {min} berechnet',
  peak_cost: 'Leistungskosten pro Jahr', meter_says: 'Der Zähler meldet', computed: 'meterkast berechnet',
  meter_peak: 'Monatsspitze (1.6.0)', meter_history: 'Spitzenverlauf (98.1.0)', meter_avg: 'Aktueller Durchschnitt (1.4.0)',
  no_capacity_regs: 'Dieser Zähler meldet keine Register für den Leistungstarif (belgische Zähler schon); die Werte oben sind aus den Energieregistern berechnet.',
  per_night: 'Niedrigste Viertelstunde jeder Nacht (00:00–06:00)', baseload_help: 'Was läuft, während alle schlafen: Kühlschrank, Gefriertruhe, Router, Standby.',
  no_nights: 'Noch nicht genug Nachtdaten: die Grundlast braucht den Großteil einer Nacht (00:00–06:00).',
  dialect: 'Dialekt', equipment: 'Gerätenummer', submeters: 'Unterzähler', sources: 'Quellen', state: 'Zustand',
  connected: 'verbunden', not_connected: 'nicht verbunden', accepted: 'Angenommen', rejected: 'Abgelehnt',
  first_seen: 'Zuerst gesehen', last_seen: 'Zuletzt gesehen', version: 'Version', last_telegram: 'Letztes Rohtelegramm', none: 'keine',
  channel: 'Kanal', type: 'Art', source: 'Quelle', currency: 'Währung', import_price: 'Bezug pro kWh', export_price: 'Einspeisung pro kWh',
  gas_price: 'Gas pro m³', water_price: 'Wasser pro m³', heat_price: 'Wärme pro GJ', daily: 'Fest pro Tag',
  capacity_price: 'Leistungstarif pro kW und Jahr', capacity_min: 'Leistungsminimum (kW)', tariffs_34: 'Tarife 3 und 4',
  prices_help: 'Hier gesetzte Preise werden in der Datenbank gespeichert und gehen der Konfigurationsdatei vor.',
  error: 'Laden fehlgeschlagen: {msg}', theme: 'Design', select_meter: 'Zähler',
  identify: 'Identifizieren: ein HomeWizard-Client (etwa Home Assistant) fragt, welches Gerät dies ist. Es ist dieses.',
};

const fr = {
  ...en,
  now: 'Maintenant', history: 'Historique', capacity: 'Capacité', baseload: 'Consommation de base', meter: 'Compteur', prices: 'Prix',
  importing: 'Prélèvement du réseau', exporting: 'Injection sur le réseau', idle: 'Équilibré',
  net_power: 'Puissance nette', electricity: 'Électricité', avg_power: 'Puissance moyenne', phases: 'Phases', phase: 'Phase', power: 'Puissance', voltage: 'Tension', current: 'Courant',
  last_15: '15 dernières minutes', today: "Aujourd'hui", import: 'Prélèvement', export: 'Injection', gas: 'Gaz', water: 'Eau', heat: 'Chaleur',
  cost: 'Coût', net_cost: 'Coût net', fixed: 'Frais fixes', total: 'Total', tariff: 'Tarif',
  no_meter: "Aucun compteur n'a encore envoyé de mesure. meterkast attend sa source ; cette page se remplit d'elle-même.",
  no_phases: 'Ce compteur ne donne pas de valeurs par phase.', no_gas: "Aucun compteur de gaz n'est relié à ce compteur.",
  no_data: 'Pas de données pour cette période.', day: 'Jour', month: 'Mois', year: 'Année', prev: 'Précédent', next: 'Suivant',
  typical: 'Consommation de base typique', per_year: 'par an', save: 'Enregistrer', saved: 'Enregistré.', language: 'Langue',
  disconnected: "La source {name} n'est pas connectée : {note}", live_lost: 'La connexion en direct est perdue ; reconnexion…',
  waiting_live: 'En attente de la prochaine mesure…', stale: 'La dernière mesure date de {age}.', quarter_hours: "Quarts d'heure",
  compare: 'Comparé à {period}', previous_period: 'la période précédente', change: 'Écart',
  running_avg: "Ce quart d'heure jusqu'ici", projected: 'Prévu à {time}', month_peak: 'Pointe de {month}', peak_link: 'Ouvrir ce jour',
  months_13: 'Pointes mensuelles, 13 derniers mois', rolling: 'Moyenne glissante sur 12 mois', billed: 'facturé au moins {min}',
  peak_cost: 'Coût de capacité par an', meter_says: 'Le compteur indique', computed: 'Calculé par meterkast',
  meter_peak: 'Pointe du mois (1.6.0)', meter_history: 'Historique des pointes (98.1.0)', meter_avg: 'Moyenne actuelle (1.4.0)',
  no_capacity_regs: "Ce compteur ne donne pas les registres du tarif capacitaire (les compteurs belges oui) ; les valeurs ci-dessus sont calculées à partir des registres d'énergie.",
  per_night: "Quart d'heure le plus bas de chaque nuit (00:00–06:00)", baseload_help: 'Ce qui tourne pendant que tout le monde dort : frigo, congélateur, routeurs, veille.',
  no_nights: "Pas encore assez de données nocturnes : il faut la plus grande partie d'une nuit (00:00–06:00).",
  dialect: 'Dialecte', equipment: "Numéro d'équipement", submeters: 'Sous-compteurs', sources: 'Sources', state: 'État',
  connected: 'connectée', not_connected: 'déconnectée', accepted: 'Acceptés', rejected: 'Rejetés',
  first_seen: 'Vu la première fois', last_seen: 'Vu la dernière fois', version: 'Version', last_telegram: 'Dernier télégramme brut', none: 'aucun',
  channel: 'Canal', type: 'Type', source: 'Source', currency: 'Devise', import_price: 'Prélèvement par kWh', export_price: 'Injection par kWh',
  gas_price: 'Gaz par m³', water_price: 'Eau par m³', heat_price: 'Chaleur par GJ', daily: 'Fixe par jour',
  capacity_price: 'Tarif capacitaire par kW et par an', capacity_min: 'Minimum capacitaire (kW)', tariffs_34: 'Tarifs 3 et 4',
  prices_help: 'Les prix saisis ici sont gardés dans la base de données et priment sur le fichier de configuration.',
  error: 'Échec du chargement : {msg}', theme: 'Thème', select_meter: 'Compteur',
  identify: 'Identification : un client HomeWizard (comme Home Assistant) demande quel appareil est celui-ci. C’est celui-ci.',
};

export const LANGS = { en, nl, de, fr };
export const LANG_NAMES = { en: 'EN', nl: 'NL', de: 'DE', fr: 'FR' };

let lang = 'en';

/** Picks the language: a saved choice, else the browser's, else English. */
export function initLang() {
  const saved = localStorage.getItem('mk-lang');
  const wanted = saved || (navigator.languages || [navigator.language || 'en']).map((l) => l.slice(0, 2))
    .find((l) => LANGS[l]);
  lang = LANGS[wanted] ? wanted : 'en';
  document.documentElement.lang = lang;
  return lang;
}

export function setLang(l) {
  if (!LANGS[l]) return;
  lang = l;
  localStorage.setItem('mk-lang', l);
  document.documentElement.lang = l;
}

export const currentLang = () => lang;

/** The text for `key` in the current language, `{name}` placeholders filled in. */
export function t(key, vars = {}) {
  const s = LANGS[lang][key] ?? en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => (vars[k] ?? ''));
}

const nf = {};
function numFmt(digits) {
  const k = `${lang}:${digits}`;
  nf[k] ??= new Intl.NumberFormat(lang, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  return nf[k];
}

/** A number with `digits` decimals in the user's locale; a dash for none. */
export function num(v, digits = 0) {
  return v == null || !Number.isFinite(v) ? '–' : numFmt(digits).format(v);
}

/** Power: W below 1 kW, kW above. */
export function power(w, signed = false) {
  if (w == null || !Number.isFinite(w)) return '–';
  const sign = signed && w > 0 ? '+' : '';
  return Math.abs(w) < 1000 ? `${sign}${num(w, 0)} W` : `${sign}${num(w / 1000, 2)} kW`;
}

const known = (v) => v != null && Number.isFinite(v);
export const kwh = (v, d = 2) => (known(v) ? `${num(v, d)} kWh` : '–');
export const m3 = (v, d = 3) => (known(v) ? `${num(v, d)} m³` : '–');

export function money(v, currency = 'EUR') {
  if (v == null || !Number.isFinite(v)) return '–';
  return new Intl.NumberFormat(lang, { style: 'currency', currency }).format(v);
}

/** Date and time formats on the meter's calendar. */
export function fmt(t, opts) {
  const d = t instanceof Date ? t : new Date(typeof t === 'number' ? t * 1000 : t);
  return new Intl.DateTimeFormat(lang, { timeZone: TZ, ...opts }).format(d);
}

export const time = (t) => fmt(t, { hour: '2-digit', minute: '2-digit' });
export const timeSec = (t) => fmt(t, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
export const date = (t) => fmt(t, { weekday: 'short', day: 'numeric', month: 'short', year: 'numeric' });
export const dateTime = (t) => fmt(t, { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit' });
export const monthName = (t) => fmt(t, { month: 'long', year: 'numeric' });

/** `YYYY-MM-DD` of an instant on the meter's calendar. */
export function localDate(t) {
  const d = t instanceof Date ? t : new Date(typeof t === 'number' ? t * 1000 : t);
  return new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' }).format(d);
}

/** A duration in words-ish: 42 s, 5 min, 3 h, 2 d. */
export function age(seconds) {
  if (seconds < 120) return `${num(seconds)} s`;
  if (seconds < 7200) return `${num(seconds / 60)} min`;
  if (seconds < 172800) return `${num(seconds / 3600)} h`;
  return `${num(seconds / 86400)} d`;
}
