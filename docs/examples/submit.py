"""Submit a job from a web application (or any Python program)."""

from jobrunner import Client, InvalidJob

client = Client("127.0.0.1:11300")  # or a list of "HOST:PORT" for several servers
try:
    job_id = client.submit(
        "prediction",
        input="https://data.example.org/meters/42.json",
        result="https://results.example.org/forecasts/42.json",
        params={"horizon": "24h"},
    )
except InvalidJob as exc:  # refused before it was put: nothing reached the queue
    print(f"not submitted: {exc}")
else:
    print(f"submitted {job_id}")
finally:
    client.close()
