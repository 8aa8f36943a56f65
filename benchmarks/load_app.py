"""Open N concurrent sessions of the web app's Photo page in headless Chromium, upload a group
photo in all of them at once, and report errors and the latency until all 5 faces are shown.

    python benchmarks/load_app.py [--sessions 20] [--gradcam] [--model fast|accurate|RUN] [--port 8590]

With --gradcam every session turns the Grad-CAM toggle on before uploading.

Needs Debian's chromium and chromium-driver, and selenium.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.common.by import By

PHOTO = Path(__file__).resolve().parent.parent / "tests" / "data" / "bbt3.jpg"


def start_app(port: int, model: str | None) -> subprocess.Popen:
    command = [str(Path(sys.executable).parent / "ferkit"), "app", "--port", str(port), "--headless"]
    if model:
        command += ["--model", model]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(180):
        try:
            if urllib.request.urlopen(f"http://localhost:{port}/_stcore/health", timeout=2).read() == b"ok":
                return process
        except OSError:
            time.sleep(0.5)
    process.terminate()
    raise SystemExit("the app did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--model", help="bundled model name or run folder (default: fast)")
    parser.add_argument("--gradcam", action="store_true", help="turn Grad-CAM on in every session")
    parser.add_argument("--port", type=int, default=8590)
    parser.add_argument("--timeout", type=float, default=300)
    args = parser.parse_args()
    server = start_app(args.port, args.model)
    url = f"http://localhost:{args.port}/"  # the Photo page is the default page
    with tempfile.TemporaryDirectory() as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
                     f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path="/usr/bin/chromedriver"))
        try:
            tabs = []
            for i in range(args.sessions):
                if i:
                    driver.switch_to.new_window("tab")
                driver.get(url)
                tabs.append(driver.current_window_handle)
            for tab in tabs:  # wait until every session shows its uploader
                driver.switch_to.window(tab)
                for _ in range(240):
                    if driver.find_elements(By.CSS_SELECTOR, "input[type=file]"):
                        break
                    time.sleep(0.25)
                if args.gradcam:
                    toggle = driver.find_element(By.XPATH, "//label[.//p[text()='Grad-CAM heatmaps']]")
                    driver.execute_script("arguments[0].click()", toggle)
                    time.sleep(0.5)
            started = {}
            for tab in tabs:
                driver.switch_to.window(tab)
                driver.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(PHOTO))
                started[tab] = time.perf_counter()
            latency: dict[str, float] = {}
            errors: dict[str, str] = {}
            deadline = time.perf_counter() + args.timeout
            while len(latency) + len(errors) < len(tabs) and time.perf_counter() < deadline:
                for tab in tabs:
                    if tab in latency or tab in errors:
                        continue
                    driver.switch_to.window(tab)
                    body = driver.find_element(By.TAG_NAME, "body").text
                    if "Face 5:" in body:
                        latency[tab] = time.perf_counter() - started[tab]
                    elif "Traceback" in body or "Cannot read" in body or "Error" in body:
                        errors[tab] = body[-200:]
                time.sleep(0.2)
            timeouts = len(tabs) - len(latency) - len(errors)
        finally:
            driver.quit()
            server.terminate()
    values = sorted(latency.values())
    print(f"Grad-CAM: {'on' if args.gradcam else 'off'}, sessions: {args.sessions}, completed: {len(values)}, errors: {len(errors)}, timeouts: {timeouts}")
    if values:
        print(f"latency until 5 faces shown: median {statistics.median(values):.2f} s, "
              f"max {values[-1]:.2f} s, min {values[0]:.2f} s")


if __name__ == "__main__":
    main()
