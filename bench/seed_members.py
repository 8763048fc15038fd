#!/usr/bin/env python3
"""Writes N members as CSV for `brama members import`: valid PESELs, 20 common surnames each
followed by a number below 97 (so a search for one matches about N/1940 members)."""
import random
import sys

SURNAMES = ["Kowalski", "Nowak", "Wisniewski", "Wojcik", "Kaminski", "Lewandowski", "Zielinski", "Szymanski",
            "Wozniak", "Dabrowski", "Kozlowski", "Jankowski", "Mazur", "Kwiatkowski", "Krawczyk", "Piotrowski",
            "Grabowski", "Nowakowski", "Pawlowski", "Michalski"]
NAMES = ["Anna", "Piotr", "Maria", "Krzysztof", "Katarzyna", "Andrzej", "Agnieszka", "Tomasz", "Barbara", "Pawel"]
CITIES = ["Warszawa", "Kraków", "Łódź", "Wrocław", "Poznań", "Gdańsk", "Szczecin", "Lublin", "Katowice", "Białystok"]
VOIVODESHIPS = ["Mazowieckie", "Małopolskie", "Łódzkie", "Dolnośląskie", "Wielkopolskie", "Pomorskie",
                "Zachodniopomorskie", "Lubelskie", "Śląskie", "Podlaskie"]
WEIGHTS = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3]


def pesel(n):
    # Distinct for n < 10 000 * days: the serial carries n's low digits, the date its high ones.
    day = n // 10000
    year, month, dom = 1940 + day // 336 % 60, 1 + day // 28 % 12, 1 + day % 28
    mm = month + (20 if year >= 2000 else 0)
    first10 = f"{year % 100:02d}{mm:02d}{dom:02d}{n % 10000:04d}"
    check = (10 - sum(w * int(d) for w, d in zip(WEIGHTS, first10)) % 10) % 10
    return first10 + str(check)


def main():
    count = int(sys.argv[1])
    rnd = random.Random(7)
    print("imie;nazwisko;wyksztalcenie;pesel;wojewodztwo;miejscowosc;ulica;nrdomulokalu;kodpocztowy;email;tel")
    for n in range(count):
        city = rnd.randrange(len(CITIES))
        surname = f"{SURNAMES[n % len(SURNAMES)]}{n % 97}"
        print(f"{rnd.choice(NAMES)};{surname};Średnie;{pesel(n)};{VOIVODESHIPS[city]};{CITIES[city]};"
              f"Długa;{n % 200 + 1};{rnd.randrange(100):02d}-{rnd.randrange(1000):03d};m{n}@example.org;"
              f"600 {n % 1000:03d} {rnd.randrange(1000):03d}")


if __name__ == "__main__":
    main()
