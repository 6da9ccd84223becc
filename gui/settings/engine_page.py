"""The Engine page: which machine answers, this computer or a server at an address (with its API key), the Wren
engines heard on the local network (mDNS), and for a Wren server its model, threads and cores (its admin API)."""
from __future__ import annotations

import asyncio

from PySide6.QtWidgets import (QButtonGroup, QLineEdit, QListWidget, QListWidgetItem, QRadioButton, QSpinBox,
                               QVBoxLayout, QWidget)

from wren.engine.runtime.topology import format_cpu_list, parse_cpu_list
from wren.engine.settings import CORE_PRESETS, MAX_THREADS
from wren.gui.settings.common import TOUCH_HEIGHT, button, combo, form, note, spin, touch

__all__ = ["EnginePage"]


class EnginePage:
    """The Engine page of SettingsDialog (mixed into it)."""

    def _build_engine_page(self) -> QWidget:
        page = QWidget()
        v = QVBoxLayout(page)
        self.local_radio = touch(QRadioButton("This computer"), "This computer")
        self.remote_radio = touch(QRadioButton("A server at this address:"), "A server")
        self.where_group = QButtonGroup(page)
        self.where_group.addButton(self.local_radio)
        self.where_group.addButton(self.remote_radio)
        self.where_group.buttonToggled.connect(self._where_changed)
        v.addWidget(self.local_radio)
        v.addWidget(self.remote_radio)
        f = form()
        self.url_edit = touch(QLineEdit(), "Server address", "wren serve, llama-server, Ollama, LM Studio: "
                                                               "http://host:port")
        self.url_edit.setPlaceholderText("http://192.168.1.20:8080")
        self.url_edit.setMinimumWidth(300)
        self.url_edit.textChanged.connect(self._changed)
        f.addRow("Address:", self.url_edit)
        self.key_edit = touch(QLineEdit(), "API key", "sent as Authorization: Bearer; empty for none")
        self.key_edit.setEchoMode(QLineEdit.Password)
        self.key_edit.textChanged.connect(self._changed)
        f.addRow("API key:", self.key_edit)
        v.addLayout(f)
        v.addWidget(note("Chat and the modes then run on that server; the sampling defaults stay this window's."))

        v.addWidget(note("Wren engines on the local network (wren serve --advertise); tap one to use it:"))
        self.found_list = QListWidget()
        self.found_list.setAccessibleName("Engines on the network")
        self.found_list.setMinimumHeight(TOUCH_HEIGHT * 3)
        self.found_list.itemClicked.connect(self._use_found)
        v.addWidget(self.found_list)

        self.check_button = button("Ask the server", tip="what it serves; for a Wren server, its threads and cores")
        self.check_button.clicked.connect(lambda: self._remote_job(None))
        v.addWidget(self.check_button)
        self.remote_label = note()
        self.remote_label.setAccessibleName("The server")
        v.addWidget(self.remote_label)
        rf = form()
        self.remote_model = combo("Server model", "one of the models installed on the server; it loads it")
        rf.addRow("Server model:", self.remote_model)
        self.remote_threads = spin(QSpinBox(), "Server threads", "0 runs one thread per selected core")
        self.remote_threads.setRange(0, MAX_THREADS)
        self.remote_threads.setSpecialValueText("One per selected core")
        rf.addRow("Server threads:", self.remote_threads)
        self.remote_cores = combo("Server cores")
        for key in CORE_PRESETS:
            self.remote_cores.addItem(key, key)
        self.remote_cores.currentIndexChanged.connect(self._remote_cores_changed)
        rf.addRow("Server cores:", self.remote_cores)
        self.remote_cpus = touch(QLineEdit(), "Server CPUs", "the server's CPU numbers for custom, e.g. 0-3 or 4,5")
        self.remote_cpus.setPlaceholderText("0-3")
        rf.addRow("Server CPUs:", self.remote_cpus)
        v.addLayout(rf)
        self.remote_apply = button("Apply on the server")
        self.remote_apply.clicked.connect(self._apply_remote)
        v.addWidget(self.remote_apply)
        self._show_remote_controls(False)
        v.addStretch(1)

        self._browser = None
        self._browser_stopped: asyncio.Future | None = None
        self._remote_task: asyncio.Future | None = None
        self._remote_serving: str | None = None
        self.finished.connect(self._stop_browsing)
        self._start_browsing()
        return page

    # ---- where ---------------------------------------------------------------------------------------------------

    def _set_engine(self, url: str, key: str) -> None:
        (self.remote_radio if url else self.local_radio).setChecked(True)
        self.url_edit.setText(url)
        self.key_edit.setText(key)
        self._where_changed()

    def _engine_url(self) -> str:
        return self.url_edit.text().strip() if self.remote_radio.isChecked() else ""

    def _engine_key(self) -> str:
        return self.key_edit.text().strip()

    def _where_changed(self, *_) -> None:
        remote = self.remote_radio.isChecked()
        for w in (self.url_edit, self.key_edit, self.check_button):
            w.setEnabled(remote)
        self._changed()

    # ---- the network -----------------------------------------------------------------------------------------------

    def _start_browsing(self) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no event loop runs the dialog (a test of the widgets alone): nothing to listen with
            return
        from wren.engine.serve.mdns import EngineBrowser

        self._browser = EngineBrowser(self._show_found)
        asyncio.ensure_future(self._listen(self._browser))

    async def _listen(self, browser) -> None:
        try:
            await browser.start()
        except OSError as e:  # no multicast here (no network, a sandbox): the address is typed instead
            self.found_list.addItem(f"Cannot listen on the network: {e}")

    def _stop_browsing(self, *_) -> None:
        """The dialog closed: the browser lets go of its sockets (stopping_browsing() is when that is done)."""
        if self._browser is not None:
            self._browser_stopped = asyncio.ensure_future(self._browser.stop())
            self._browser = None

    async def stopping_browsing(self) -> None:
        """Until the network listener of a closed dialog has closed its sockets."""
        if self._browser_stopped is not None:
            await self._browser_stopped

    def _show_found(self, found) -> None:
        self.found_list.clear()
        for f in sorted(found, key=lambda f: f.name):
            item = QListWidgetItem(f"{f.name}: {f.model} at {f.url}{' (key needed)' if f.key_required else ''}")
            item.setData(256, f.url)  # Qt.UserRole
            self.found_list.addItem(item)

    def _use_found(self, item: QListWidgetItem) -> None:
        self.remote_radio.setChecked(True)
        self.url_edit.setText(item.data(256))

    # ---- the server's own settings ---------------------------------------------------------------------------------

    def _show_remote_controls(self, shown: bool) -> None:
        for w in (self.remote_model, self.remote_threads, self.remote_cores, self.remote_apply):
            w.setVisible(shown)
        self.remote_cpus.setVisible(shown and self.remote_cores.currentData() == "custom")

    def _remote_cores_changed(self, *_) -> None:
        self.remote_cpus.setVisible(self.remote_apply.isVisible() and self.remote_cores.currentData() == "custom")

    def remote_changes(self) -> dict:
        """What "Apply on the server" asks of it: threads and cores, its CPUs for custom, and its model if another
        one was picked. ValueError for a CPU list that is not one."""
        changes = {"threads": self.remote_threads.value(), "cores": self.remote_cores.currentData()}
        if changes["cores"] == "custom":
            changes["custom_cpus"] = parse_cpu_list(self.remote_cpus.text())
            if not changes["custom_cpus"]:
                raise ValueError("name the server's CPUs to use, e.g. 0-3")
        model = self.remote_model.currentData()
        if model and model != self._remote_serving:
            changes["model"] = model
        return changes

    def _apply_remote(self) -> None:
        try:
            changes = self.remote_changes()
        except ValueError as e:
            self.remote_label.setText(f"Server CPUs: {e}")
            return
        if "model" in changes:
            self.remote_label.setText(f"The server is loading {changes['model']}…")
        self._remote_job(changes)

    def _remote_job(self, changes: dict | None) -> None:
        url, key = self._engine_url(), self._engine_key()
        if not url:
            return
        if changes is None or "model" not in changes:
            self.remote_label.setText("Asking the server…")
        self._remote_task = asyncio.ensure_future(self._ask_remote(url, key, changes))

    async def _ask_remote(self, url: str, key: str, changes: dict | None) -> None:
        from wren.engine.remote import RemoteEngine, RemoteError, admin

        try:
            engine = await RemoteEngine.open(url, key)
            await engine.close()
            if engine.info.kind != "wren":
                self._show_remote_controls(False)
                self.remote_label.setText(f"{engine.host}: {engine.info.kind} serving {engine.model_name}; its "
                                          "threads and cores are set on that machine.")
                return
            state = await admin(url, key, changes)
        except RemoteError as e:
            self._show_remote_controls(False)
            self.remote_label.setText(str(e))
            return
        self.remote_threads.setValue(state["settings"]["threads"])
        i = self.remote_cores.findData(state["settings"]["cores"])
        if i >= 0:
            self.remote_cores.setCurrentIndex(i)
        self.remote_cpus.setText(format_cpu_list(state["settings"]["custom_cpus"]))
        self.remote_model.clear()
        self._remote_serving = None
        for m in state["models"]:
            self.remote_model.addItem(f"{m['name']} ({m['size'] / 2**20:.0f} MiB)", m["name"])
            if m.get("serving"):
                self._remote_serving = m["name"]
                self.remote_model.setCurrentIndex(self.remote_model.count() - 1)
        machine = state["machine"]
        cpus = ", ".join(f"{c['id']} ({c['core'] or 'unknown core'})" for c in machine["cpus"])
        where = f"CPUs {format_cpu_list(state['cpus'])}" if state["cpus"] else "any CPU"
        self.remote_label.setText(
            f"Wren at {engine.host}: {state['model']}, {state['threads']} threads on {where}"
            f"{', pinned' if state['pinned'] else ''}.\nIts CPUs: {cpus}.")
        self._show_remote_controls(True)
